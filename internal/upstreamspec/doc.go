// Package upstreamspec is the syntax of the gateway's upstream list
// (UPSTREAM_URL: base URLs, each with its options) and of its model
// aliases (MODEL_ALIASES), checked before the gateway starts
// (docs/configuration.md#models-and-routing). The proxy parses each
// upstream with ParseItem and checks aliases given in its Config with
// CheckAliases; the CLI and package server read the settings with
// ParseUpstreams and ParseAliases.
//
// Its errors name the item at fault and never show a password, nor an
// option's value other than a model id.
package upstreamspec
