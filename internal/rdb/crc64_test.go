package rdb

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestCRC64CheckVector(t *testing.T) {
	// The check value DESIGN.md gives, which Go's hash/crc64 does not produce.
	if got := CRC64(0, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("CRC64(123456789) = %#x, want 0xe9c6d914c4b8d9ca", got)
	}
}

// bitwise is the definition, one bit at a time.
func bitwise(crc uint64, p []byte) uint64 {
	for _, b := range p {
		crc ^= uint64(b)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ jonesReflected
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

func TestCRC64MatchesDefinitionInPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	want := bitwise(0, data)
	for _, cut := range []int{0, 1, 7, 8, 9, 63, 1000, 4999, 5000} {
		if got := CRC64(CRC64(0, data[:cut]), data[cut:]); got != want {
			t.Fatalf("split at %d: %#x, want %#x", cut, got, want)
		}
	}
}

func BenchmarkCRC64(b *testing.B) {
	for _, size := range []int{64, 4096, 1 << 20} {
		data := make([]byte, size)
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				CRC64(0, data)
			}
		})
	}
}
