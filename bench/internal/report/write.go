package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write writes BASE.md, BASE.json and BASE.svg (not for an A/B or a
// -streams-pairs run) into dir and the markdown to stdout. The whole
// benchmark's BASE is "latest".
func (r *Report) Write(dir, base string, stdout io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	md := r.markdown()
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{base + ".md": []byte(md), base + ".json": append(js, '\n')}
	if r.AB == nil && r.PeerPairs == nil {
		files[base+".svg"] = []byte(r.svg())
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	_, err = io.WriteString(stdout, md)
	return err
}

// Read returns the report in the JSON file at path (a run's latest.json).
func Read(path string) (*Report, error) {
	js, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(js, &r); err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	return &r, nil
}

// Render rewrites latest.md and latest.svg in dir from the report in the
// JSON file at path (after a change to how they are drawn).
func Render(path, dir string) error {
	r, err := Read(path)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "latest.svg"), []byte(r.svg()), 0o644)
}
