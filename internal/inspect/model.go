package inspect

import (
	"encoding/json"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/authgate/authgate/internal/apierr"
	"github.com/authgate/authgate/internal/openai"
	"github.com/authgate/authgate/internal/proxy"
)

// The answers to a request whose model cannot be found
// (docs/http.md#model-routing). They are shared: never modify them.
var (
	BodyNoModel      = apierr.Body("you must provide a model parameter", "invalid_request_error", "missing_model")
	BodyBadJSON      = apierr.Body("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)", "invalid_request_error", "invalid_json")
	bodyTooLarge     = apierr.Body("Request body too large for the gateway to find its model", "invalid_request_error", "request_too_large")
	BodyBusy         = apierr.Body("The gateway is reading too many request bodies at once; please retry", "api_error", "server_busy")
	bodyBadMultipart = apierr.Body("The multipart/form-data body does not parse as its boundary says", "invalid_request_error", "invalid_multipart")
)

// Found is what Model found in a request.
type Found struct {
	// Model is the model the body names, if HasModel.
	Model    []byte
	HasModel bool
	// Body is the body read, if any: it is left in the request, in
	// memory, for the upstream, and must be released (Budget.Release)
	// once the request is sent. Nil for a request without a body.
	Body *Body
	// Request is the JSON body parsed (the zero Request for a multipart
	// body), for edits of the body (openai.Request.AppendBody, through
	// Budget.Rewrite) without parsing it again.
	Request openai.Request
	// Status, when not 0, is the status to answer, with ErrBody (nil for
	// 499, the client gone): the request cannot be inspected.
	Status  int
	ErrBody []byte
}

// Model reads req's body, if it is a POST, PUT or PATCH with one, and
// finds the model it names: a JSON body's top-level "model", or a
// multipart/form-data body's model field.
func (b *Budget) Model(req *fasthttp.Request) Found {
	if req.Header.ContentLength() == 0 || !(req.Header.IsPost() || req.Header.IsPut() || req.Header.IsPatch()) {
		return Found{}
	}
	body, err := b.Read(req)
	if err != nil {
		switch {
		case errors.Is(err, ErrTooLarge):
			return Found{Status: fasthttp.StatusRequestEntityTooLarge, ErrBody: bodyTooLarge}
		case errors.Is(err, ErrBusy):
			return Found{Status: fasthttp.StatusServiceUnavailable, ErrBody: BodyBusy}
		case proxy.ClientGone(err):
			return Found{Status: proxy.StatusClientClosed}
		}
		st, eb := apierr.ForReadError(err)
		return Found{Status: st, ErrBody: eb}
	}
	req.SetBodyRaw(body.Bytes())
	f := Found{Body: body}
	if boundary := req.Header.MultipartFormBoundary(); len(boundary) > 0 {
		m, ok, err := openai.MultipartModel(body.Bytes(), boundary)
		if err != nil {
			f.Status, f.ErrBody = fasthttp.StatusBadRequest, bodyBadMultipart
			return f
		}
		f.Model, f.HasModel = []byte(m), ok
		return f
	}
	r, err := openai.ParseRequest(body.Bytes())
	if err != nil {
		f.Status, f.ErrBody = fasthttp.StatusBadRequest, badRequestBody(err)
		return f
	}
	f.Request, f.Model, f.HasModel = r, r.Model, r.HasModel
	return f
}

// badRequestBody is the 400 for a JSON body ParseRequest refused: not
// JSON, or a member the gateway reads given twice or of the wrong type
// (the errors name the member, never the body's bytes).
func badRequestBody(err error) []byte {
	var fe *openai.FieldError
	if errors.As(err, &fe) {
		msg, _ := json.Marshal("Invalid request body: " + fe.Error())
		return []byte(`{"error":{"message":` + string(msg) + `,"type":"invalid_request_error","param":null,"code":"invalid_request_body"}}`)
	}
	return BodyBadJSON
}
