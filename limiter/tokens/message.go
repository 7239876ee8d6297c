package tokens

import (
	"strconv"
	"time"
)

// The error codes of refusals, as OpenAI's: a token limit's refusal
// (Limited or TooLarge) is rate_limit_exceeded.
const (
	CodeRateLimitExceeded        = "rate_limit_exceeded"
	CodeConcurrencyLimitExceeded = "concurrency_limit_exceeded"
)

// Message returns the message and the code of the 429 body refusing
// keyID's request with r, in OpenAI's words; both are "" for an admission.
// key_ids are [A-Za-z0-9_-], so the message needs no JSON escaping.
func Message(keyID string, r Result) (message, code string) {
	return string(AppendMessage(nil, keyID, r)), Code(r)
}

// Code returns the error code of a refusal with r: CodeRateLimitExceeded
// or CodeConcurrencyLimitExceeded; "" for an admission.
func Code(r Result) string {
	switch r.Kind {
	case Limited, TooLarge:
		return CodeRateLimitExceeded
	case ConcurrencyExceeded:
		return CodeConcurrencyLimitExceeded
	}
	return ""
}

// AppendMessage appends Message's text to dst and returns it; it does not
// allocate if dst has room. The texts, for KEY_ID:
//
//	Rate limit reached for KEY_ID on tokens per min (TPM): Limit 1000, Used 900, Requested 200. Please try again in 1.2s.
//	Request too large for KEY_ID on tokens per min (TPM): Limit 1000, Requested 2000. The input or output tokens must be reduced in order to run successfully.
//	Too many concurrent requests for KEY_ID: limit 4 requests in flight. Please try again once one has finished.
//
// and "tokens per day (TPD)" for ScopeTPD. The retry time is RetryAfter
// rounded up to the millisecond (waiting that long is enough) and written
// as time.Duration writes it: "250ms", "1.2s", "6m0s", "1h2m3.5s".
func AppendMessage(dst []byte, keyID string, r Result) []byte {
	switch r.Kind {
	case Limited:
		dst = append(dst, "Rate limit reached for "...)
		dst = appendOn(dst, keyID, r)
		dst = append(dst, ", Used "...)
		dst = strconv.AppendInt(dst, r.Used, 10)
		dst = append(dst, ", Requested "...)
		dst = strconv.AppendInt(dst, r.Requested, 10)
		dst = append(dst, ". Please try again in "...)
		dst = appendRetry(dst, r.RetryAfter)
		return append(dst, '.')
	case TooLarge:
		dst = append(dst, "Request too large for "...)
		dst = appendOn(dst, keyID, r)
		dst = append(dst, ", Requested "...)
		dst = strconv.AppendInt(dst, r.Requested, 10)
		return append(dst, ". The input or output tokens must be reduced in order to run successfully."...)
	case ConcurrencyExceeded:
		dst = append(dst, "Too many concurrent requests for "...)
		dst = append(dst, keyID...)
		dst = append(dst, ": limit "...)
		dst = strconv.AppendInt(dst, r.Limit, 10)
		return append(dst, " requests in flight. Please try again once one has finished."...)
	}
	return dst
}

// appendOn appends "KEY_ID on tokens per min (TPM): Limit L".
func appendOn(dst []byte, keyID string, r Result) []byte {
	dst = append(dst, keyID...)
	if r.Scope == ScopeTPD {
		dst = append(dst, " on tokens per day (TPD): Limit "...)
	} else {
		dst = append(dst, " on tokens per min (TPM): Limit "...)
	}
	return strconv.AppendInt(dst, r.Limit, 10)
}

// appendRetry appends d rounded up to the millisecond, as
// time.Duration.String writes it; "0s" for d <= 0.
func appendRetry(dst []byte, d time.Duration) []byte {
	if d <= 0 {
		return append(dst, "0s"...)
	}
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if ms < 1000 {
		dst = strconv.AppendInt(dst, ms, 10)
		return append(dst, "ms"...)
	}
	const msPerMinute, msPerHour = 60 * 1000, 60 * 60 * 1000
	if h := ms / msPerHour; h > 0 {
		dst = strconv.AppendInt(dst, h, 10)
		dst = append(dst, 'h')
	}
	if ms >= msPerMinute {
		dst = strconv.AppendInt(dst, ms%msPerHour/msPerMinute, 10)
		dst = append(dst, 'm')
	}
	dst = strconv.AppendInt(dst, ms%msPerMinute/1000, 10)
	if frac := ms % 1000; frac > 0 {
		digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
		n := 3
		for digits[n-1] == '0' {
			n--
		}
		dst = append(dst, '.')
		dst = append(dst, digits[:n]...)
	}
	return append(dst, 's')
}
