package apierr

import (
	"strconv"
	"time"
)

// AppendDuration appends d, rounded to the millisecond, in the style of
// time.Duration.String ("1s", "6m0s", "59.5s", "250ms"), without allocating.
// Negative durations are written as "0s".
func AppendDuration(dst []byte, d time.Duration) []byte {
	d = d.Round(time.Millisecond)
	if d <= 0 {
		return append(dst, "0s"...)
	}
	if d < time.Second {
		dst = strconv.AppendInt(dst, int64(d/time.Millisecond), 10)
		return append(dst, "ms"...)
	}
	h := d / time.Hour
	if h > 0 {
		dst = strconv.AppendInt(dst, int64(h), 10)
		dst = append(dst, 'h')
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 || h > 0 {
		dst = strconv.AppendInt(dst, int64(m), 10)
		dst = append(dst, 'm')
		d -= m * time.Minute
	}
	s := d / time.Second
	dst = strconv.AppendInt(dst, int64(s), 10)
	if ms := int64((d - s*time.Second) / time.Millisecond); ms > 0 {
		dst = append(dst, '.')
		frac := [3]byte{byte('0' + ms/100), byte('0' + ms/10%10), byte('0' + ms%10)}
		n := 3
		for n > 0 && frac[n-1] == '0' {
			n--
		}
		dst = append(dst, frac[:n]...)
	}
	return append(dst, 's')
}

// RetryAfterSeconds is the Retry-After value for d: whole seconds, rounded
// up, at least 1.
func RetryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}
