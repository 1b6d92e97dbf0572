package rdb

// Redis checksums RDB files and DUMP payloads with CRC-64/Jones: reflected
// polynomial 0x95ac9329ac4bc9b5, initial value 0, no final XOR. Go's
// hash/crc64 inverts before and after and only slices by 8 for its own two
// polynomials, so resync carries its own slicing-by-8 implementation.

const jonesReflected = 0x95ac9329ac4bc9b5

// crcTables[0] is the byte-at-a-time table; crcTables[k][b] is the CRC of
// byte b followed by k zero bytes, for consuming 8 bytes per step.
var crcTables = func() (t [8][256]uint64) {
	for i := range 256 {
		crc := uint64(i)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ jonesReflected
			} else {
				crc >>= 1
			}
		}
		t[0][i] = crc
	}
	for i := range 256 {
		crc := t[0][i]
		for k := 1; k < 8; k++ {
			crc = t[0][crc&0xff] ^ crc>>8
			t[k][i] = crc
		}
	}
	return t
}()

// CRC64 continues the Redis CRC-64 of earlier bytes (crc, 0 to start) over p.
func CRC64(crc uint64, p []byte) uint64 {
	t := &crcTables
	for len(p) >= 8 {
		crc ^= uint64(p[0]) | uint64(p[1])<<8 | uint64(p[2])<<16 | uint64(p[3])<<24 |
			uint64(p[4])<<32 | uint64(p[5])<<40 | uint64(p[6])<<48 | uint64(p[7])<<56
		crc = t[7][crc&0xff] ^ t[6][crc>>8&0xff] ^ t[5][crc>>16&0xff] ^ t[4][crc>>24&0xff] ^
			t[3][crc>>32&0xff] ^ t[2][crc>>40&0xff] ^ t[1][crc>>48&0xff] ^ t[0][crc>>56]
		p = p[8:]
	}
	for _, b := range p {
		crc = t[0][byte(crc)^b] ^ crc>>8
	}
	return crc
}
