package tokens

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// StateFile is the name of the file State.WriteFile writes in its
// directory, and LoadState reads.
const StateFile = "tokens-per-day.json"

// stateVersion is the file format's version, its "version" field.
const stateVersion = 1

// State is the TPD totals of key_ids, to carry them across a restart:
// Registry.State takes it, WriteFile saves it, LoadState reads it back and
// Config.State starts a Registry from it. The file is JSON:
//
//	{"version":1,"keys":{"KEY_ID":{"date":"2026-11-27","tokens":12345}}}
type State struct {
	// Keys maps a key_id to its total.
	Keys map[string]DayTotal `json:"keys"`
}

// DayTotal is one key_id's tokens counted on one UTC day: committed, plus
// reserved by requests in flight when it was taken.
type DayTotal struct {
	// Date is the UTC day, YYYY-MM-DD.
	Date string `json:"date"`
	// Tokens is the total, >= 0.
	Tokens int64 `json:"tokens"`
}

// stateFile is the file's JSON document.
type stateFile struct {
	Version int                 `json:"version"`
	Keys    map[string]DayTotal `json:"keys"`
}

// LoadState reads the State in dir's StateFile, keeping only the entries
// of now's UTC day. A missing file is an empty State, the first start's; a
// file that cannot be read or parsed, or with an entry that is not a date
// and a total >= 0, is an error.
func LoadState(dir string, now time.Time) (*State, error) {
	path := filepath.Join(dir, StateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Keys: map[string]DayTotal{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read tokens-per-day state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("cannot parse tokens-per-day state %q: %w", path, err)
	}
	if f.Version != stateVersion {
		return nil, fmt.Errorf("cannot parse tokens-per-day state %q: version %d, want %d", path, f.Version, stateVersion)
	}
	today := formatDay(floorDiv(now.UnixNano(), dayNanos))
	s := &State{Keys: make(map[string]DayTotal, len(f.Keys))}
	for id, e := range f.Keys {
		if _, ok := parseDay(e.Date); !ok || e.Tokens < 0 {
			return nil, fmt.Errorf("cannot parse tokens-per-day state %q: invalid entry for key_id %q", path, id)
		}
		if e.Date == today {
			s.Keys[id] = e
		}
	}
	return s, nil
}

// WriteFile saves s to dir's StateFile atomically: it writes a temporary
// file in dir, fsyncs it, renames it over StateFile and fsyncs dir, so
// the file is always either the previous State or this one, whole.
func (s *State) WriteFile(dir string) error {
	data, err := json.Marshal(stateFile{Version: stateVersion, Keys: s.Keys})
	if err != nil {
		return fmt.Errorf("cannot encode tokens-per-day state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, StateFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("cannot save tokens-per-day state: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, StateFile))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cannot save tokens-per-day state: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("cannot save tokens-per-day state: %w", err)
	}
	return nil
}

// syncDir fsyncs directory dir, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// formatDay returns UTC day number day (since 1970-01-01) as YYYY-MM-DD.
func formatDay(day int64) string {
	return time.Unix(day*(dayNanos/int64(time.Second)), 0).UTC().Format(time.DateOnly)
}

// parseDay returns the UTC day number of a YYYY-MM-DD date, and whether it
// is one.
func parseDay(date string) (int64, bool) {
	t, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return 0, false
	}
	return floorDiv(t.UnixNano(), dayNanos), true
}

// Saver saves a Registry's State to a directory every interval and on
// Close, so that a crash loses at most the last interval's tokens. It
// writes only when the State differs from the last one written.
//
// A Saver runs one goroutine, from NewSaver to Close. It is safe for
// concurrent use.
type Saver struct {
	dir  string
	reg  *Registry
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex // serialises saves; guards the fields below
	written map[string]DayTotal
	err     error
}

// NewSaver starts saving reg's State to dir every interval (zero or less:
// 1 s). The directory must exist; a save that fails is retried at the
// next interval, and Err reports it.
func NewSaver(dir string, reg *Registry, interval time.Duration) *Saver {
	if interval <= 0 {
		interval = time.Second
	}
	s := &Saver{dir: dir, reg: reg, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run(interval)
	return s
}

func (s *Saver) run(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Save()
		}
	}
}

// Save writes the registry's State at time.Now() now, unless it is the
// one last written, and returns the error of the write.
func (s *Saver) Save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.reg.State(time.Now())
	if s.written != nil && maps.Equal(st.Keys, s.written) {
		return nil
	}
	s.err = st.WriteFile(s.dir)
	if s.err == nil {
		s.written = st.Keys
	}
	return s.err
}

// Err returns the error of the last save, nil if it succeeded.
func (s *Saver) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close stops the Saver, saves one last time and returns that save's
// error. Later calls return nil and do nothing.
func (s *Saver) Close() error {
	err := error(nil)
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		err = s.Save()
	})
	return err
}
