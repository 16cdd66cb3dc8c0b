package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Magic bytes of the compressed formats a recording may come in.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// countingReader counts the bytes read through it, for progress.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// decompress returns the NDJSON inside in: gzip and zstd are recognised by
// their magic bytes, anything else is read as is. close releases the
// decompressor.
func decompress(in io.Reader) (r io.Reader, close func(), err error) {
	br := bufio.NewReaderSize(in, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("read: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { _ = zr.Close() }, nil
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// chunker cuts NDJSON into chunks of about size bytes without splitting a
// line, so that each chunk decodes on its own and a file of any size is
// held a chunk at a time. A line longer than maxLine is skipped and
// counted: it cannot be one health-check event.
type chunker struct {
	r             *bufio.Reader
	buf           []byte
	size, maxLine int
	eof           bool
	// err is a read error met after the last chunk's complete lines: it
	// is returned by the next call, once they are replayed.
	err error

	// Of the last chunk: its non-blank lines (events, skipped ones
	// included) and the positions among them of the lines skipped for
	// their length.
	lines   int
	skipped []int
}

func newChunker(r io.Reader, size, maxLine int) *chunker {
	return &chunker{r: bufio.NewReaderSize(r, 64<<10), size: size, maxLine: maxLine}
}

// next returns the next chunk, valid until the following call, or io.EOF
// once the input is exhausted. When reading fails, the complete lines read
// before are returned first and the error by the following call; the line
// the failure cut is dropped.
func (c *chunker) next() ([]byte, error) {
	c.buf, c.lines, c.skipped = c.buf[:0], 0, c.skipped[:0]
	if c.err != nil {
		return nil, c.err
	}
	for len(c.buf) < c.size && !c.eof && c.err == nil {
		start := len(c.buf)
		skipping := false
		for {
			frag, err := c.r.ReadSlice('\n')
			if !skipping {
				if len(c.buf)-start+len(frag) > c.maxLine {
					skipping = true
					c.buf = c.buf[:start]
					c.skipped = append(c.skipped, c.lines)
					c.lines++
				} else {
					c.buf = append(c.buf, frag...)
				}
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) {
				c.eof = true
			} else if err != nil {
				c.err = fmt.Errorf("read: %w", err)
				if !skipping {
					c.buf = c.buf[:start]
				}
			}
			break
		}
		if !skipping && len(bytes.TrimSpace(c.buf[start:])) > 0 {
			c.lines++
		}
	}
	if len(c.buf) == 0 && len(c.skipped) == 0 {
		if c.err != nil {
			return nil, c.err
		}
		if c.eof {
			return nil, io.EOF
		}
	}
	return c.buf, nil
}

// ordinal maps the index of an event among those the decoder saw (the
// chunk's lines but the skipped ones) to its position among all the
// chunk's lines.
func (c *chunker) ordinal(index int) int {
	for _, s := range c.skipped {
		if s <= index {
			index++
		}
	}
	return index
}

// firstByte is the first byte of b that is not white space or a UTF-8 byte
// order mark, 0 when there is none.
func firstByte(b []byte) byte {
	b = bytes.TrimPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("\xef\xbb\xbf"))
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}
