package main

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

// The request every scenario sends: the in-process benchmarks' small chat
// completion (bench/e2e_bench_test.go), and its streamed variant.
const (
	chatPath   = "/v1/chat/completions"
	chatBody   = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}]}`
	streamBody = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello."}]}`
)

// rawRequest returns the bytes of a POST of body to path on host with key
// as a bearer token ("" for none), as wrk sends them.
func rawRequest(host, path, key, body string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", path, host)
	if key != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", key)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.Bytes()
}

// response is what readResponse keeps of a response.
type response struct {
	status int
	close  bool   // the server closes the connection after it
	body   []byte // only if asked for
}

var errMalformed = errors.New("malformed HTTP response")

// readResponse reads one HTTP/1.x response from br. The body is discarded
// unless keepBody is set. It handles Content-Length, chunked and
// read-until-close bodies; onChunk, if set, is called with each chunk of a
// chunked body as it arrives (the streaming client timestamps events with
// it).
func readResponse(br *bufio.Reader, keepBody bool, onChunk func([]byte)) (response, error) {
	var r response
	line, err := br.ReadSlice('\n')
	if err != nil {
		return r, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return r, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	r.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return r, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	http10 := line[7] == '0'
	r.close = http10
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
			return r, fmt.Errorf("%w: header line %q", errMalformed, line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 {
				return r, fmt.Errorf("%w: Content-Length %q", errMalformed, v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			if bytes.EqualFold(v, []byte("close")) {
				r.close = true
			} else if http10 && bytes.EqualFold(v, []byte("keep-alive")) {
				r.close = false
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
	case r.status == 204 || r.status == 304 || r.status/100 == 1:
	default:
		r.close = true
		_, err = io.Copy(body, br)
	}
	r.body = buf.Bytes()
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
			return fmt.Errorf("%w: chunk size %q", errMalformed, line)
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

// roundTrip sends one request on a fresh connection to addr and returns
// the response with its body: the checks before each scenario use it.
func roundTrip(addr string, req []byte) (response, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return response{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return response{}, err
	}
	return readResponse(bufio.NewReader(c), true, nil)
}
