package rdb

import (
	"fmt"
)

// A module value (type 7) and module AUX data are a module type ID then
// a sequence of typed items, each preceded by its opcode, ending with 0.
// The markers let a reader skip a value without the module.
const (
	moduleEOF    = 0
	moduleSInt   = 1
	moduleUInt   = 2
	moduleFloat  = 3
	moduleDouble = 4
	moduleString = 5
)

// moduleName decodes the 9-character type name packed in the top 54
// bits of a module type ID (the low 10 bits are its encoding version).
func moduleName(id uint64) string {
	const charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var name [9]byte
	id >>= 10
	for i := 8; i >= 0; i-- {
		name[i] = charset[id&63]
		id >>= 6
	}
	return string(name[:])
}

// readModule reads a module value: the type ID, then items to the EOF
// marker. The value itself is passed on whole (Raw); it has no elements.
func (d *Decoder) readModule(fn visit) error {
	id, err := d.in.plainLength()
	if err != nil {
		return fmt.Errorf("module id: %w", err)
	}
	d.rec.Module = moduleName(id)
	if err := d.skipModuleItems(); err != nil {
		return fmt.Errorf("value of module type %q: %w", d.rec.Module, err)
	}
	return nil
}

func (d *Decoder) skipModuleItems() error {
	in := d.in
	for {
		op, err := in.plainLength()
		if err != nil {
			return err
		}
		switch op {
		case moduleEOF:
			return nil
		case moduleSInt, moduleUInt:
			_, err = in.plainLength()
		case moduleFloat:
			_, err = in.next(4)
		case moduleDouble:
			_, err = in.next(8)
		case moduleString:
			err = in.skipStr()
		default:
			return fmt.Errorf("unknown module item opcode %d", op)
		}
		if err != nil {
			return err
		}
	}
}

// ModuleAux is module data saved outside the keyspace (MODULE_AUX).
type ModuleAux struct {
	Module string
	When   uint64 // 1: before the keys, 2: after them
}

func (d *Decoder) readModuleAux() error {
	in := d.in
	id, err := in.plainLength()
	if err != nil {
		return fmt.Errorf("MODULE_AUX id: %w", err)
	}
	name := moduleName(id)
	op, err := in.plainLength()
	if err != nil {
		return fmt.Errorf("MODULE_AUX of %q: %w", name, err)
	}
	if op != moduleUInt {
		return fmt.Errorf("MODULE_AUX of %q: its 'when' has opcode %d, not %d", name, op, moduleUInt)
	}
	when, err := in.plainLength()
	if err != nil {
		return fmt.Errorf("MODULE_AUX of %q: %w", name, err)
	}
	if err := d.skipModuleItems(); err != nil {
		return fmt.Errorf("MODULE_AUX of %q: %w", name, err)
	}
	d.moduleAux = append(d.moduleAux, ModuleAux{Module: name, When: when})
	return nil
}
