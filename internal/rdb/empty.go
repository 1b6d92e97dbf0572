package rdb

import (
	"encoding/binary"
	"fmt"
)

// IsEmpty reports whether a raw value (as ReadValue or Raw return it) is
// a collection with no elements. Redis skips such keys when it loads a
// file (old servers could save them) and refuses them in RESTORE, so a
// sync must skip them too. It reads only counts, and decompresses a node
// only when the count is inside it.
func IsEmpty(raw []byte) (bool, error) {
	if len(raw) < 2 {
		return false, fmt.Errorf("raw value of %d bytes", len(raw))
	}
	typ := raw[0]
	in := sliceInput(raw[1:])
	switch typ {
	case TypeList, TypeSet, TypeZSet, TypeHash, TypeZSet2, TypeHashMetadataPreGA:
		n, err := in.plainLength()
		return n == 0, err
	case TypeHashMetadata:
		if _, err := in.uint64LE(); err != nil {
			return false, err
		}
		n, err := in.plainLength()
		return n == 0, err
	case TypeListQuicklist, TypeListQuicklist2:
		nodes, err := in.plainLength()
		if err != nil {
			return false, err
		}
		for range nodes {
			container := uint64(nodePacked)
			if typ == TypeListQuicklist2 {
				if container, err = in.plainLength(); err != nil {
					return false, err
				}
			}
			b, err := in.str()
			if err != nil {
				return false, err
			}
			if container == nodePlain {
				return false, nil
			}
			if empty, err := blobEmpty(TypeListZiplist, b, typ == TypeListQuicklist); !empty || err != nil {
				return false, err
			}
		}
		return true, nil
	case TypeHashZipmap, TypeListZiplist, TypeSetIntset, TypeZSetZiplist, TypeHashZiplist,
		TypeHashListpack, TypeZSetListpack, TypeSetListpack, TypeHashListpackEx, TypeHashListpackExPreGA:
		if typ == TypeHashListpackEx {
			if _, err := in.uint64LE(); err != nil {
				return false, err
			}
		}
		b, err := in.str()
		if err != nil {
			return false, err
		}
		zip := typ == TypeListZiplist || typ == TypeZSetZiplist || typ == TypeHashZiplist
		return blobEmpty(typ, b, zip)
	}
	return false, nil // strings, streams and modules are never skipped
}

// blobEmpty reads the element count of an encoded value.
func blobEmpty(typ byte, b []byte, zip bool) (bool, error) {
	switch {
	case typ == TypeSetIntset:
		if len(b) < 8 {
			return false, fmt.Errorf("intset of %d bytes", len(b))
		}
		return binary.LittleEndian.Uint32(b[4:]) == 0, nil
	case typ == TypeHashZipmap:
		if len(b) < 2 {
			return false, fmt.Errorf("zipmap of %d bytes", len(b))
		}
		return b[1] == 0xff, nil
	}
	bl, err := openBlob(b, zip)
	if err != nil {
		return false, err
	}
	return bl.done(), nil
}
