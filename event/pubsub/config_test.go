package pubsub_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/eventproc/eventproc/event/pubsub"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     pubsub.Config
		wantErr string // substring; "" means valid
	}{
		{name: "zero value", cfg: pubsub.Config{}},
		{name: "all set", cfg: pubsub.Config{HistorySize: 10, BufferSize: 5, Policy: pubsub.Disconnect, MaxSubscribers: 3}},
		{name: "history disabled", cfg: pubsub.Config{DisableHistory: true}},
		{name: "negative history", cfg: pubsub.Config{HistorySize: -1}, wantErr: "HistorySize -1 is negative"},
		{name: "history size and disabled", cfg: pubsub.Config{HistorySize: 5, DisableHistory: true}, wantErr: "set together with DisableHistory"},
		{name: "negative buffer", cfg: pubsub.Config{BufferSize: -2}, wantErr: "BufferSize -2 is negative"},
		{name: "unknown policy", cfg: pubsub.Config{Policy: 7}, wantErr: "unknown Policy(7)"},
		{name: "negative max subscribers", cfg: pubsub.Config{MaxSubscribers: -3}, wantErr: "MaxSubscribers -3 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				pubsub.New(tt.cfg).Close()
				return
			}
			if !errors.Is(err, pubsub.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	err := pubsub.Config{HistorySize: -1, BufferSize: -1, MaxSubscribers: -1}.Validate()
	for _, want := range []string{"HistorySize", "BufferSize", "MaxSubscribers"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}

func TestNewPanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		err, _ := recover().(error)
		if !errors.Is(err, pubsub.ErrInvalidConfig) {
			t.Errorf("New panicked with %v, want ErrInvalidConfig", err)
		}
	}()
	pubsub.New(pubsub.Config{BufferSize: -1})
}

func TestPolicyString(t *testing.T) {
	tests := []struct {
		p    pubsub.Policy
		want string
	}{
		{pubsub.DropOldest, "drop-oldest"},
		{pubsub.Disconnect, "disconnect"},
		{pubsub.Policy(9), "Policy(9)"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("Policy(%d).String() = %q, want %q", int(tt.p), got, tt.want)
		}
	}
}
