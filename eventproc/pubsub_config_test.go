package main

import (
	"strings"
	"testing"
	"time"

	"github.com/eventproc/eventproc/event/pubsub"
)

// TestPubSubConfig: the hub's flags and variables reach sink.Config.PubSub.
func TestPubSubConfig(t *testing.T) {
	const route = "hello=localhost:9090"
	tests := []struct {
		name      string
		args      []string
		env       func(string) string
		want      pubsub.Config
		heartbeat time.Duration
	}{{
		name:      "defaults",
		args:      []string{"--route", route},
		env:       noEnv,
		want:      pubsub.Config{HistorySize: 1024, BufferSize: 256, Policy: pubsub.DropOldest, MaxSubscribers: 10000},
		heartbeat: 15 * time.Second,
	}, {
		name: "flags",
		args: []string{"--route", route, "--history", "0", "--subscriber-buffer", "8", "--slow-subscriber", "Disconnect",
			"--max-subscribers", "3", "--sse-heartbeat", "250ms"},
		env:       noEnv,
		want:      pubsub.Config{DisableHistory: true, BufferSize: 8, Policy: pubsub.Disconnect, MaxSubscribers: 3},
		heartbeat: 250 * time.Millisecond,
	}, {
		name: "environment",
		args: []string{"--route", route},
		env: envOf("EVENTPROC_HISTORY", "5", "EVENTPROC_SUBSCRIBER_BUFFER", "6", "EVENTPROC_SLOW_SUBSCRIBER", "drop-oldest",
			"EVENTPROC_MAX_SUBSCRIBERS", "7", "EVENTPROC_SSE_HEARTBEAT", "1m"),
		want:      pubsub.Config{HistorySize: 5, BufferSize: 6, Policy: pubsub.DropOldest, MaxSubscribers: 7},
		heartbeat: time.Minute,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Sink.PubSub; got != tc.want {
				t.Errorf("PubSub = %+v, want %+v", got, tc.want)
			}
			if c.SSEHeartbeat != tc.heartbeat {
				t.Errorf("SSEHeartbeat = %v, want %v", c.SSEHeartbeat, tc.heartbeat)
			}
		})
	}

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--history", "-1"}, `--history "-1": want at least 0`},
		{[]string{"--subscriber-buffer", "0"}, `--subscriber-buffer "0": want at least 1`},
		{[]string{"--max-subscribers", "0"}, `--max-subscribers "0": want at least 1`},
		{[]string{"--slow-subscriber", "block"}, `--slow-subscriber "block": want drop or disconnect`},
		{[]string{"--sse-heartbeat", "0"}, `--sse-heartbeat "0": want a positive duration`},
	}
	for _, tc := range bad {
		_, err := parseConfig(append([]string{"--route", route}, tc.args...), noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseConfig(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
