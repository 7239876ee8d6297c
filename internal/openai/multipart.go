package openai

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/textproto"
	"strings"
	"unicode/utf8"
)

// MaxPartHeader is the longest header block, in bytes, of a part of a
// multipart body that MultipartModel reads.
const MaxPartHeader = 16 << 10

// ErrMultipart: a multipart/form-data body is not as MultipartModel
// requires.
var ErrMultipart = errors.New("openai: the body is not multipart/form-data as its boundary says")

// MultipartModel returns the "model" field of a multipart/form-data body
// (RFC 7578), such as an audio transcription or translation request, and
// reports whether there is one. boundary is the boundary parameter of the
// request's Content-Type. It reads each part's header and searches for the
// delimiter after it, copying nothing of the other parts: a file part
// costs a search through its bytes.
//
// It is stricter than the parsers upstreams use, so that what it reads is
// what they read: the body must start with the first delimiter (no
// preamble), lines end with "\r\n", a header block has no folded lines and
// is at most MaxPartHeader bytes, a Content-Disposition is given once per
// part, parses as a media type and has no RFC 2231 "name*" parameter, and
// the body ends with the close delimiter (what follows it is ignored).
// Such failures wrap ErrMultipart. The model field must be given once,
// without a filename, Content-Transfer-Encoding or a Content-Type other
// than text/plain in UTF-8, and be UTF-8 text: else a *FieldError for
// "model" (ErrDuplicate or ErrType). Errors quote nothing of the body.
func MultipartModel(body, boundary []byte) (model string, ok bool, err error) {
	if !validBoundary(boundary) {
		return "", false, fmt.Errorf("%w: invalid boundary", ErrMultipart)
	}
	delim := append([]byte("\r\n--"), boundary...) // before every delimiter but the first
	if !bytes.HasPrefix(body, delim[2:]) {
		return "", false, fmt.Errorf("%w: no boundary at the start", ErrMultipart)
	}
	i := len(delim) - 2 // just past a delimiter's "--boundary"
	for {
		if bytes.HasPrefix(body[i:], []byte("--")) {
			if j := skipLWSP(body, i+2); j == len(body) || bytes.HasPrefix(body[j:], []byte("\r\n")) {
				return model, ok, nil
			}
			return "", false, fmt.Errorf("%w: text after the close delimiter at byte %d", ErrMultipart, i)
		}
		i = skipLWSP(body, i)
		if !bytes.HasPrefix(body[i:], []byte("\r\n")) {
			return "", false, fmt.Errorf("%w: text after a delimiter at byte %d", ErrMultipart, i)
		}
		i += 2

		// The header block, up to the blank line.
		var header []byte
		if !bytes.HasPrefix(body[i:], []byte("\r\n")) {
			window := body[i:min(len(body), i+MaxPartHeader+4)]
			end := bytes.Index(window, []byte("\r\n\r\n"))
			if end < 0 {
				return "", false, fmt.Errorf("%w: a part header at byte %d is unterminated or over %d bytes", ErrMultipart, i, MaxPartHeader)
			}
			header = body[i : i+end+2]
			i += end + 2
		}
		i += 2

		// The content, up to the next delimiter: "\r\n--boundary" then
		// white space, a line end, "--" or the end of the body, as
		// mime/multipart finds it.
		start, end := i, 0
		if bytes.HasPrefix(body[i:], delim[2:]) && afterDelimiter(body, i+len(delim)-2) {
			// No content, and the delimiter without its "\r\n", as
			// mime/multipart reads it at the start of a part.
			end, i = start, i+len(delim)-2
		} else {
			for {
				k := bytes.Index(body[i:], delim)
				if k < 0 {
					return "", false, fmt.Errorf("%w: a part at byte %d has no delimiter after it", ErrMultipart, start)
				}
				end, i = i+k, i+k+len(delim)
				if afterDelimiter(body, i) {
					break
				}
			}
		}
		content := body[start:end]

		isModel, err := isModelPart(header, start)
		if err != nil {
			return "", false, err
		}
		if isModel {
			if ok {
				return "", false, &FieldError{"model", ErrDuplicate}
			}
			if !utf8.Valid(content) {
				return "", false, &FieldError{"model", ErrType}
			}
			model, ok = string(content), true
		}
	}
}

// isModelPart reads the header block of the part whose content starts at
// byte at, and reports whether it is the model field.
func isModelPart(header []byte, at int) (bool, error) {
	if len(header) == 0 {
		return false, nil
	}
	for line := range bytes.Lines(header) {
		if !bytes.HasSuffix(line, []byte("\r\n")) || bytes.ContainsAny(line[:len(line)-2], "\r\n") ||
			line[0] == ' ' || line[0] == '\t' || bytes.IndexByte(line, ':') < 0 {
			return false, fmt.Errorf("%w: a malformed part header before byte %d", ErrMultipart, at)
		}
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(header, '\r', '\n'))))
	h, err := r.ReadMIMEHeader()
	if err != nil {
		return false, fmt.Errorf("%w: a malformed part header before byte %d", ErrMultipart, at)
	}
	cd := h.Values("Content-Disposition")
	if len(cd) == 0 {
		return false, nil
	}
	if len(cd) > 1 || hasExtendedName(cd[0]) {
		return false, fmt.Errorf("%w: an ambiguous Content-Disposition before byte %d", ErrMultipart, at)
	}
	disposition, params, err := mime.ParseMediaType(cd[0])
	if err != nil {
		return false, fmt.Errorf("%w: a malformed Content-Disposition before byte %d", ErrMultipart, at)
	}
	if disposition != "form-data" || params["name"] != "model" {
		return false, nil
	}
	if _, file := params["filename"]; file || len(h) > 2 {
		return false, &FieldError{"model", ErrType}
	}
	if ct := h.Values("Content-Type"); len(ct) > 0 {
		typ, ctParams, err := mime.ParseMediaType(ct[0])
		charset := strings.ToLower(ctParams["charset"])
		if err != nil || len(ct) > 1 || typ != "text/plain" || len(ctParams) > 1 ||
			len(ctParams) == 1 && charset != "utf-8" && charset != "us-ascii" {
			return false, &FieldError{"model", ErrType}
		}
	} else if len(h) > 1 {
		return false, &FieldError{"model", ErrType} // another header: Content-Transfer-Encoding…
	}
	return true, nil
}

// hasExtendedName reports whether the Content-Disposition v has a
// "name*" parameter (RFC 2231), which parsers decode differently.
func hasExtendedName(v string) bool {
	v = strings.ToLower(v)
	for i := strings.Index(v, "name*"); i >= 0; {
		if i > 0 && strings.IndexByte("; \t", v[i-1]) >= 0 {
			return true
		}
		j := strings.Index(v[i+1:], "name*")
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// afterDelimiter reports whether body[i:] may follow a delimiter's
// "--boundary" (white space, a line end, "--" or the end of the body), as
// mime/multipart tells a delimiter from content that starts like one.
func afterDelimiter(body []byte, i int) bool {
	return i == len(body) || strings.IndexByte(" \t\r\n", body[i]) >= 0 || bytes.HasPrefix(body[i:], []byte("--"))
}

// validBoundary reports whether b is a boundary as RFC 2046 defines it:
// 1 to 70 of digits, letters and '()+_,-./:=? , not ending with a space.
func validBoundary(b []byte) bool {
	if len(b) == 0 || len(b) > 70 || b[len(b)-1] == ' ' {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte("'()+_,-./:=? ", c) >= 0) {
			return false
		}
	}
	return true
}

// skipLWSP returns the offset of the first byte at or after i that is not
// a space or a tab.
func skipLWSP(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}
