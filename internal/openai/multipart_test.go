package openai

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/textproto"
	"runtime"
	"strings"
	"testing"
)

// formBody builds a multipart/form-data body with mime/multipart's
// writer, as clients write them: fields, then a file.
func formBody(t testing.TB, boundary string, fields [][2]string, file []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	if err := w.SetBoundary(boundary); err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		if err := w.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if file != nil {
		fw, err := w.CreateFormFile("file", "audio.wav")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(file)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestMultipartModel(t *testing.T) {
	f := func(body, boundary string, want string, wantOK bool) {
		t.Helper()
		model, ok, err := MultipartModel([]byte(body), []byte(boundary))
		if err != nil || ok != wantOK || model != want {
			t.Fatalf("MultipartModel(%q) = %q, %v, %v; want %q, %v", body, model, ok, err, want, wantOK)
		}
	}
	// The file's bytes hold the delimiter's prefix and a fake model part.
	file := []byte("RIFF\r\n--XYZ\x00\r\n--XYZa\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nevil\r\n")
	f(string(formBody(t, "XYZ", [][2]string{{"model", "whisper-1"}, {"language", "en"}}, file)), "XYZ", "whisper-1", true)
	f(string(formBody(t, "XYZ", [][2]string{{"language", "en"}}, file)), "XYZ", "", false)
	f(string(formBody(t, "b", nil, file)), "b", "", false)
	f(string(formBody(t, "b", [][2]string{{"model", ""}}, nil)), "b", "", true)
	f(string(formBody(t, "b", [][2]string{{"response_format", "json"}, {"model", "Systran/faster-whisper-small"}}, file)), "b",
		"Systran/faster-whisper-small", true)
	// The model after the file, with a multi-line value.
	f("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--bb\r\n"+
		"--b\r\ncontent-disposition: FORM-DATA; NAME=model\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nline1\r\nline2\r\n--b--", "b", "line1\r\nline2", true)
	// Transport padding after delimiters, and an epilogue.
	f("--b \t\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--b\t\r\n\r\nno header\r\n--b-- \r\nepilogue --b\r\n", "b", "m", true)
	// Parts with another disposition or no name are not the model.
	f("--b\r\nContent-Disposition: attachment; name=\"model\"\r\n\r\nx\r\n--b\r\nContent-Disposition: form-data; name=\"models\"\r\n\r\ny\r\n--b--\r\n", "b", "", false)
	f("--b--\r\n", "b", "", false)
}

func TestMultipartModelErrors(t *testing.T) {
	f := func(body, boundary string, want error) {
		t.Helper()
		model, ok, err := MultipartModel([]byte(body), []byte(boundary))
		if !errors.Is(err, want) || ok || model != "" {
			t.Fatalf("MultipartModel(%q) = %q, %v, %v; want %v", body, model, ok, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Fatalf("MultipartModel(%q): error %q quotes the body", body, err)
		}
	}
	part := func(header, content string) string { return "--b\r\n" + header + "\r\n\r\n" + content + "\r\n" }
	model := `Content-Disposition: form-data; name="model"`

	for _, b := range []string{"", " b", "b ", strings.Repeat("b", 71), "b\r\n", "b\"", "b;"} {
		f(part(model, "m")+"--"+b+"--", b, ErrMultipart)
	}
	f("preamble\r\n"+part(model, "m")+"--b--", "b", ErrMultipart)
	f("--b\n"+model+"\n\nm\n--b--\n", "b", ErrMultipart)    // LF line ends
	f(part(model, "m"), "b", ErrMultipart)                  // no close delimiter
	f(part(model, "m")+"--b", "b", ErrMultipart)            // ends inside a delimiter line
	f(part(model, "m")+"--b-- x", "b", ErrMultipart)        // text after the close delimiter
	f(part(model, "m")+"--b x\r\n--b--", "b", ErrMultipart) // text after a delimiter
	f(part(model, "m")+"--b\r\r\n--b--", "b", ErrMultipart) // a lone CR
	f("--b\r\n"+model+"\r\n", "b", ErrMultipart)            // the header unterminated
	f(part(model+"\r\n"+strings.Repeat("X-A: secret\r\n", 2000), "m")+"--b--", "b", ErrMultipart)
	f(part("Content-Disposition: form-data;\r\n name=\"model\"", "m")+"--b--", "b", ErrMultipart) // folded
	f(part("Content-Disposition: form-data; name=\"x\"\nX: secret", "m")+"--b--", "b", ErrMultipart)
	f(part("no colon secret", "m")+"--b--", "b", ErrMultipart)
	f(part(model+"\r\n"+model, "m")+"--b--", "b", ErrMultipart)
	f(part(`Content-Disposition: form-data; name*=UTF-8''model`, "m")+"--b--", "b", ErrMultipart)
	f(part(`Content-Disposition: form-data; name="x"; name*=UTF-8''model`, "m")+"--b--", "b", ErrMultipart)
	f(part(`Content-Disposition: form-data; name="model"; name="x"`, "m")+"--b--", "b", ErrMultipart)
	f(part(`Content-Disposition: form-data; name="model"; secret`, "m")+"--b--", "b", ErrMultipart)

	f(part(model, "a")+part(model, "b")+"--b--", "b", ErrDuplicate)
	f(part(model+`; filename="m.txt"`, "m")+"--b--", "b", ErrType)
	f(part(model+`; filename=""`, "m")+"--b--", "b", ErrType)
	f(part(model+"\r\nContent-Transfer-Encoding: quoted-printable", "m=3D")+"--b--", "b", ErrType)
	f(part(model+"\r\nContent-Type: text/plain; charset=utf-16", "m")+"--b--", "b", ErrType)
	f(part(model+"\r\nContent-Type: application/json", "m")+"--b--", "b", ErrType)
	f(part(model, "\xff")+"--b--", "b", ErrType)
}

// TestMultipartModelNoCopy: reading the model of a body with a 1 MB file
// allocates a few hundred bytes (the header parser's), not the file.
func TestMultipartModelNoCopy(t *testing.T) {
	body := formBody(t, "b0undary", [][2]string{{"model", "whisper-1"}}, bytes.Repeat([]byte("\r\n--b0undar"), 100000))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 10
	for range runs {
		if m, ok, err := MultipartModel(body, []byte("b0undary")); m != "whisper-1" || !ok || err != nil {
			t.Fatal(m, ok, err)
		}
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 64<<10 {
		t.Fatalf("MultipartModel of a %d-byte body allocates %d bytes", len(body), perRun)
	}
}

// TestMultipartModelAgrees: on bodies mime/multipart's writer builds, the
// model is the one mime/multipart's reader reads, and both refuse the body
// a field value with a delimiter in it breaks.
func TestMultipartModelAgrees(t *testing.T) {
	for _, fields := range [][][2]string{
		{{"model", "whisper-1"}},
		{{"language", "en"}, {"model", "a\"b\\c é"}, {"prompt", "--b\r\n"}},
		{{"model", "x\r\n--bounds"}},
		{{"model", "x\r\n--bound"}},
	} {
		body := formBody(t, "bound", fields, []byte("\x00\x01--bound\r\n--boundX\r\n--boun"))
		model, ok, err := MultipartModel(body, []byte("bound"))
		ref, refOK, refErr := referenceMultipartModel(body, "bound")
		if (err != nil) != (refErr != nil) || ok != refOK || model != ref {
			t.Fatalf("%q: got %q, %v, %v; mime/multipart %q, %v, %v", body, model, ok, err, ref, refOK, refErr)
		}
	}
}

// referenceMultipartModel reads the model field with mime/multipart: ok if
// there is exactly one; an error if the body does not parse or has two.
func referenceMultipartModel(body []byte, boundary string) (string, bool, error) {
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	var model string
	n := 0
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", false, err
		}
		content, err := io.ReadAll(p)
		if err != nil {
			return "", false, err
		}
		if p.FormName() == "model" {
			n++
			model = string(content)
			if _, file := p.Header[textproto.CanonicalMIMEHeaderKey("Content-Disposition")]; !file {
				return "", false, errors.New("no Content-Disposition")
			}
		}
	}
	if n > 1 {
		return "", false, errors.New("two models")
	}
	return model, n == 1, nil
}
