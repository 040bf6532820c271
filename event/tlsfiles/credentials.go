package tlsfiles

import (
	"context"
	"errors"
	"net"

	"google.golang.org/grpc/credentials"
)

// ClientCredentials returns gRPC transport credentials for dialling with
// [Files.ClientConfig]: they verify the server's certificate for
// serverName or, when it is empty, for the host of the address dialled
// (a name or an IP address). They are for clients only.
func (f *Files) ClientCredentials(serverName string) credentials.TransportCredentials {
	return &clientCreds{f: f, serverName: serverName}
}

// clientCreds is grpc-go's TLS credentials with a configuration made per
// handshake, which knows the name to verify.
type clientCreds struct {
	f          *Files
	serverName string
}

func (c *clientCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	name := c.serverName
	if name == "" {
		name = authority
		if host, _, err := net.SplitHostPort(authority); err == nil {
			name = host
		}
	}
	return credentials.NewTLS(c.f.ClientConfig(name)).ClientHandshake(ctx, authority, raw)
}

func (c *clientCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("tlsfiles: client credentials cannot serve; use credentials.NewTLS(files.ServerConfig(\"h2\"))")
}

func (c *clientCreds) Info() credentials.ProtocolInfo {
	return credentials.NewTLS(c.f.ClientConfig(c.serverName)).Info()
}

func (c *clientCreds) Clone() credentials.TransportCredentials {
	clone := *c
	return &clone
}

// OverrideServerName implements the deprecated method of the interface.
func (c *clientCreds) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}
