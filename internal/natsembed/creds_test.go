package natsembed

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// operator is a NATS operator with one JetStream-enabled account, as nsc
// sets up a decentralised deployment.
type operator struct {
	claims *jwt.OperatorClaims
	acct   nkeys.KeyPair
	pub    string // the account's public key
	jwt    string // the account's JWT, signed by the operator
	// The system account, which JetStream needs.
	sysPub, sysJWT string
}

func newOperator(t *testing.T) *operator {
	t.Helper()
	okp, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	opub, _ := okp.PublicKey()
	account := func(jetStream bool) (nkeys.KeyPair, string, string) {
		akp, err := nkeys.CreateAccount()
		if err != nil {
			t.Fatal(err)
		}
		apub, _ := akp.PublicKey()
		ac := jwt.NewAccountClaims(apub)
		if jetStream {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		ajwt, err := ac.Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		return akp, apub, ajwt
	}
	_, sysPub, sysJWT := account(false)
	akp, apub, ajwt := account(true)
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "test"
	oc.SystemAccount = sysPub
	if _, err := oc.Encode(okp); err != nil {
		t.Fatal(err)
	}
	return &operator{claims: oc, acct: akp, pub: apub, jwt: ajwt, sysPub: sysPub, sysJWT: sysJWT}
}

// creds writes a credentials file of a new user of the account, signed by
// signer (the account's key for a valid user).
func (o *operator) creds(t *testing.T, dir, name string, signer nkeys.KeyPair) string {
	t.Helper()
	ukp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	ujwt, err := uc.Encode(signer)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	b, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name+".creds")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestExternalCreds connects to a NATS server in operator mode with a
// credentials file: a user of the account connects and uses JetStream, a
// user signed by another account key never connects, and a file that is
// not a credentials file is refused at start.
func TestExternalCreds(t *testing.T) {
	dir := t.TempDir()
	op := newOperator(t)
	resolver := &server.MemAccResolver{}
	for pub, j := range map[string]string{op.pub: op.jwt, op.sysPub: op.sysJWT} {
		if err := resolver.Store(pub, j); err != nil {
			t.Fatal(err)
		}
	}
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		TrustedOperators: []*jwt.OperatorClaims{op.claims}, AccountResolver: resolver, SystemAccount: op.sysPub,
		JetStream: true, StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	url := "nats://127.0.0.1:" + strconv.Itoa(ns.Addr().(*net.TCPAddr).Port)

	st, err := Start(Options{URL: url, CredsFile: op.creds(t, dir, "sink", op.acct)})
	if err != nil {
		t.Fatal(err)
	}
	waitConnected(t, st, "with the credentials")
	js, err := jetstream.New(st.Conn())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Errorf("JetStream with the credentials: %v", err)
	}
	st.Close()

	// A user whose JWT another account signed: refused, for ever.
	other, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	st, err = Start(Options{URL: url, CredsFile: op.creds(t, dir, "stranger", other)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitRefused(t, st, "with a stranger's credentials")

	bad := filepath.Join(dir, "bad.creds")
	if err := os.WriteFile(bad, []byte("not credentials\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{bad, filepath.Join(dir, "missing.creds")} {
		if _, err := Start(Options{URL: url, CredsFile: file}); err == nil || !strings.Contains(err.Error(), "credentials") {
			t.Errorf("Start with %s: %v, want a credentials error", filepath.Base(file), err)
		}
	}
}
