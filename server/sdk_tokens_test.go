package server_test

import (
	"testing"
	"time"

	"github.com/authgate/authgate/mockupstream"
	"github.com/authgate/authgate/server"
)

// TestOpenAISDKTokens runs tokens.test.mjs with the official OpenAI Node
// SDK against the gateway: a stream without include_usage shows no usage
// chunk and one with it exactly one; a TPM refusal raises RateLimitError,
// and the SDK's retry waits the retry-after-ms the gateway computed from
// its window (RateWindow, a few seconds here).
func TestOpenAISDKTokens(t *testing.T) {
	node, dir := sdkSetup(t)
	_, upURL := startMock(t, mockupstream.Config{Models: []string{"sdk-model"}})
	g := startGateway(t, server.Config{
		KeysFile:   keysFile(t, "sdk-stream:"+keySDK+"  models=*\nsdk-tpm:"+keySDKChat+"  tpm=1000\n"),
		Upstreams:  []string{upURL},
		RateWindow: 3 * time.Second,
	})
	runSDK(t, node, dir, "tokens.test.mjs",
		"OPENAI_BASE_URL="+g.url+"/v1",
		"AUTHGATE_STREAM_KEY="+keySDK,
		"AUTHGATE_TPM_KEY="+keySDKChat,
		"MODEL=sdk-model",
	)
}
