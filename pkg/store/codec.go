package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/healthrouter/healthrouter/pkg/health"
)

// Check records are a compact binary encoding: start-up decodes millions of
// them, so the format is read with no reflection and few allocations.
//
//	key:   region 0x00 host 0x00 check
//	value: version(1) status(1) hard(1) attempts(1) flags(1) flapCount(1)
//	       flapHistory(4) eventID(8) severity(1)
//	       varint: updated hardSince lastSeen interval
//	       string: team output; uvarint label count, then key/value strings
//
// Strings are uvarint length + bytes.
const checkRecordVersion = 1

const (
	flagFlapping = 1 << iota
	flagStale
)

var errCorrupt = errors.New("corrupt check record")

// appendCheckKey appends a check's bbolt key to buf.
func appendCheckKey(buf []byte, k health.Key) []byte {
	buf = appendHostKey(buf, k.Region, k.Host)
	buf = append(buf, 0)
	return append(buf, k.Check...)
}

// appendHostKey appends region NUL host: a forgotten host's key, and the
// prefix of its checks' keys.
func appendHostKey(buf []byte, region, host string) []byte {
	buf = append(buf, region...)
	buf = append(buf, 0)
	return append(buf, host...)
}

// splitKey returns the three parts of a check key without copying.
func splitKey(key []byte) (region, host, check []byte, err error) {
	i := bytes.IndexByte(key, 0)
	if i < 0 {
		return nil, nil, nil, errCorrupt
	}
	j := bytes.IndexByte(key[i+1:], 0)
	if j < 0 {
		return nil, nil, nil, errCorrupt
	}
	return key[:i], key[i+1 : i+1+j], key[i+2+j:], nil
}

// appendCheck appends s's value encoding to buf.
func appendCheck(buf []byte, s *health.CheckState) []byte {
	var flags byte
	if s.Flapping {
		flags |= flagFlapping
	}
	if s.Stale {
		flags |= flagStale
	}
	buf = append(buf, checkRecordVersion, byte(s.Status), byte(s.Hard), s.Attempts, flags, s.FlapCount)
	buf = binary.BigEndian.AppendUint32(buf, s.FlapHistory)
	buf = binary.BigEndian.AppendUint64(buf, s.EventID)
	buf = append(buf, byte(s.Severity))
	buf = binary.AppendVarint(buf, s.Updated)
	buf = binary.AppendVarint(buf, s.HardSince)
	buf = binary.AppendVarint(buf, s.LastSeen)
	buf = binary.AppendVarint(buf, int64(s.Interval))
	buf = appendString(buf, s.Team)
	buf = appendString(buf, s.Output)
	buf = binary.AppendUvarint(buf, uint64(len(s.Labels)))
	for _, l := range s.Labels {
		buf = appendString(buf, l.Key)
		buf = appendString(buf, l.Value)
	}
	return buf
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// decoder reads check records, sharing strings between records: keys come
// in sorted order so consecutive checks share region and host, and check
// and team names repeat across hosts.
type decoder struct {
	region, host string
	names        map[string]string
}

func newDecoder() *decoder { return &decoder{names: make(map[string]string)} }

// intern returns a shared string equal to b; only the first sight allocates.
func (d *decoder) intern(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.names) < 1<<20 {
		d.names[s] = s
	}
	return s
}

func (d *decoder) decode(key, val []byte, s *health.CheckState) error {
	region, host, check, err := splitKey(key)
	if err != nil {
		return err
	}
	if string(region) != d.region {
		d.region = string(region)
	}
	if string(host) != d.host {
		d.host = string(host)
	}
	*s = health.CheckState{}
	s.Region, s.Host, s.Check = d.region, d.host, d.intern(check)

	const fixed = 6 + 4 + 8 + 1
	if len(val) < fixed || val[0] != checkRecordVersion {
		return errCorrupt
	}
	s.Status, s.Hard, s.Attempts = health.Status(val[1]), health.Status(val[2]), val[3]
	s.Flapping, s.Stale = val[4]&flagFlapping != 0, val[4]&flagStale != 0
	s.FlapCount = val[5]
	s.FlapHistory = binary.BigEndian.Uint32(val[6:])
	s.EventID = binary.BigEndian.Uint64(val[10:])
	s.Severity = health.Severity(val[18])
	r := reader{b: val[fixed:]}
	s.Updated = r.varint()
	s.HardSince = r.varint()
	s.LastSeen = r.varint()
	s.Interval = int32(r.varint())
	if team := r.bytes(); len(team) > 0 {
		s.Team = d.intern(team)
	}
	if out := r.bytes(); len(out) > 0 {
		s.Output = string(out)
	}
	if n := r.uvarint(); n > 0 {
		if n > health.MaxLabels {
			return errCorrupt
		}
		s.Labels = make([]health.Label, n)
		for i := range s.Labels {
			s.Labels[i] = health.Label{Key: d.intern(r.bytes()), Value: string(r.bytes())}
		}
	}
	if r.err {
		return errCorrupt
	}
	return nil
}

type reader struct {
	b   []byte
	err bool
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		r.err = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// decodeCheckError wraps a record error with its key, printable.
func decodeCheckError(key []byte, err error) error {
	return fmt.Errorf("check %q: %w", bytes.ReplaceAll(key, []byte{0}, []byte{'/'}), err)
}
