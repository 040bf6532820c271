// Package natsembed runs a NATS server with JetStream inside the sink's
// process and connects to it in-process, or connects to an external NATS
// deployment instead: the store behind durable routes (docs/design.md,
// "Durable events").
//
// The embedded server never installs signal handlers (the sink drains on
// SIGTERM itself), listens on no port unless asked to (Options.Listen), keeps
// its store in Options.DataDir, and caps what JetStream may use in memory and
// on disk. [Start] returns once the server is ready and connected; [Store.Close]
// drains the connection and shuts the server down.
package natsembed
