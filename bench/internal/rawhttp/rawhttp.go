// Package rawhttp is the benchmark's own minimal HTTP/1.1 client: the
// bytes of a request as wrk sends them, and a reader of responses that
// reports each chunk of a chunked body as it arrives, for the load
// generators (bench/internal/loadgen) and the checks before each scenario.
package rawhttp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// Request returns the bytes of a POST of body to path on host with key
// as a bearer token ("" for none), as wrk sends them.
func Request(host, path, key, body string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", path, host)
	if key != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", key)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.Bytes()
}

// Response is what ReadResponse keeps of a response.
type Response struct {
	Status int
	Close  bool   // the server closes the connection after it
	Body   []byte // only if asked for
}

// ErrMalformed is the error, wrapped, for a response that is not HTTP/1.x.
var ErrMalformed = errors.New("malformed HTTP response")

// ReadResponse reads one HTTP/1.x response from br. The body is discarded
// unless keepBody is set. It handles Content-Length, chunked and
// read-until-close bodies; onChunk, if set, is called with each chunk of a
// chunked body as it arrives (the streaming client timestamps events with
// it).
func ReadResponse(br *bufio.Reader, keepBody bool, onChunk func([]byte)) (Response, error) {
	var r Response
	line, err := br.ReadSlice('\n')
	if err != nil {
		return r, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return r, fmt.Errorf("%w: status line %q", ErrMalformed, line)
	}
	r.Status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return r, fmt.Errorf("%w: status line %q", ErrMalformed, line)
	}
	http10 := line[7] == '0'
	r.Close = http10
	length, chunked := -1, false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return r, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return r, fmt.Errorf("%w: header line %q", ErrMalformed, line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 {
				return r, fmt.Errorf("%w: Content-Length %q", ErrMalformed, v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			if bytes.EqualFold(v, []byte("close")) {
				r.Close = true
			} else if http10 && bytes.EqualFold(v, []byte("keep-alive")) {
				r.Close = false
			}
		}
	}
	var body io.Writer = io.Discard
	var buf bytes.Buffer
	if keepBody {
		body = &buf
	}
	switch {
	case chunked:
		err = readChunked(br, body, onChunk)
	case length >= 0:
		_, err = io.CopyN(body, br, int64(length))
	case r.Status == 204 || r.Status == 304 || r.Status/100 == 1:
	default:
		r.Close = true
		_, err = io.Copy(body, br)
	}
	r.Body = buf.Bytes()
	return r, err
}

// readChunked reads a chunked body (RFC 9112 7.1) into w, calling onChunk
// with each chunk's data as it arrives.
func readChunked(br *bufio.Reader, w io.Writer, onChunk func([]byte)) error {
	var chunk []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		sizeHex, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		size, err := strconv.ParseInt(string(bytes.TrimSpace(sizeHex)), 16, 32)
		if err != nil || size < 0 {
			return fmt.Errorf("%w: chunk size %q", ErrMalformed, line)
		}
		if size == 0 {
			// Trailers, then the empty line.
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if cap(chunk) < int(size)+2 {
			chunk = make([]byte, size+2)
		}
		chunk = chunk[:size+2]
		if _, err := io.ReadFull(br, chunk); err != nil {
			return err
		}
		if onChunk != nil {
			onChunk(chunk[:size])
		}
		if _, err := w.Write(chunk[:size]); err != nil {
			return err
		}
	}
}

// RoundTrip sends one request on a fresh connection to addr and returns
// the response with its body: the checks before each scenario use it.
func RoundTrip(addr string, req []byte) (Response, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return Response{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return Response{}, err
	}
	return ReadResponse(bufio.NewReader(c), true, nil)
}
