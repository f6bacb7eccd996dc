// Command local-broker is the project's local MQTT broker: mochi-mqtt with the hooks that
// implement docs/broker-contract.md. It stands in for the production EMQX in every test and
// in the local box.
//
//	local-broker --addr 127.0.0.1:0 --gateway-password SECRET [--device-signing-key KEY]
//	             [--tls-addr 127.0.0.1:8883 --tls-cert cert.pem --tls-key key.pem]
//	             [--max-connections N] [--connect-timeout 10s]
//
// Every flag can also come from the environment (BROKER_ADDR, BROKER_GATEWAY_PASSWORD,
// BROKER_DEVICE_SIGNING_KEY, BROKER_LOG_LEVEL, BROKER_TLS_ADDR, BROKER_TLS_CERT,
// BROKER_TLS_KEY); a flag wins over its variable. Logs are JSON lines on stderr, at most a
// few a second of each kind; stdout gets exactly one line once listening (tls_addr only
// with a TLS listener):
//
//	{"event":"listening","addr":"127.0.0.1:<port>","tls_addr":"127.0.0.1:<port>"}
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code (0 after a clean shutdown when
// ctx ends, 1 when the broker cannot start, 2 for bad usage).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("local-broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr(getenv, "BROKER_ADDR", "127.0.0.1:1883"),
		"listen address; port 0 picks a free port (env BROKER_ADDR)")
	// The secrets' defaults are resolved after parsing, so that -help never prints them.
	gatewayPassword := fs.String("gateway-password", "",
		"password of the gateway user (required; env BROKER_GATEWAY_PASSWORD)")
	deviceKey := fs.String("device-signing-key", "",
		"HMAC-SHA256 key for device passwords; empty disables device auth (env BROKER_DEVICE_SIGNING_KEY)")
	logLevel := fs.String("log-level", envOr(getenv, "BROKER_LOG_LEVEL", "info"),
		"debug, info, warn or error (env BROKER_LOG_LEVEL)")
	tlsAddr := fs.String("tls-addr", envOr(getenv, "BROKER_TLS_ADDR", ""),
		"MQTT-over-TLS listen address; needs --tls-cert and --tls-key (env BROKER_TLS_ADDR)")
	tlsCert := fs.String("tls-cert", envOr(getenv, "BROKER_TLS_CERT", ""),
		"PEM certificate chain for the TLS listener (env BROKER_TLS_CERT)")
	tlsKey := fs.String("tls-key", envOr(getenv, "BROKER_TLS_KEY", ""),
		"PEM private key for the TLS listener (env BROKER_TLS_KEY)")
	maxConns := fs.Int("max-connections", DefaultLimits.MaxConnections, "most connections at once, all listeners")
	connectTimeout := fs.Duration("connect-timeout", DefaultLimits.ConnectTimeout,
		"time a new connection has to complete TLS and CONNECT")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "local-broker: unexpected arguments: %q\n", fs.Args())
		return 2
	}
	if *gatewayPassword == "" {
		*gatewayPassword = getenv("BROKER_GATEWAY_PASSWORD")
	}
	if *deviceKey == "" {
		*deviceKey = getenv("BROKER_DEVICE_SIGNING_KEY")
	}
	if *gatewayPassword == "" {
		fmt.Fprintln(stderr, "local-broker: the gateway password is required: pass --gateway-password or set BROKER_GATEWAY_PASSWORD")
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "local-broker: bad --log-level / BROKER_LOG_LEVEL %q: %v\n", *logLevel, err)
		return 2
	}

	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	b, err := New(Config{
		Addr:             *addr,
		GatewayPassword:  *gatewayPassword,
		DeviceSigningKey: *deviceKey,
		Logger:           log,
		TLSAddr:          *tlsAddr,
		TLSCertFile:      *tlsCert,
		TLSKeyFile:       *tlsKey,
		Limits:           Limits{ConnectTimeout: *connectTimeout, MaxConnections: *maxConns},
	})
	if err != nil {
		log.Error("broker setup failed", "event", "setup_failed", "error", err.Error())
		return 1
	}
	bound, err := b.Start()
	if err != nil {
		log.Error("listen failed", "event", "listen_failed", "addr", *addr, "error", err.Error())
		return 1
	}
	line, _ := json.Marshal(struct {
		Event   string `json:"event"`
		Addr    string `json:"addr"`
		TLSAddr string `json:"tls_addr,omitempty"`
	}{"listening", bound, b.TLSAddress()})
	fmt.Fprintf(stdout, "%s\n", line)
	log.Info("listening", "event", "listening", "addr", bound, "tls_addr", b.TLSAddress(),
		"device_auth", *deviceKey != "", "max_packet_size", maxPacketSize,
		"max_connections", *maxConns, "connect_timeout", connectTimeout.String())

	<-ctx.Done()
	log.Info("shutting down", "event", "shutdown")
	b.Close()
	log.Info("stopped", "event", "stopped", "counters", b.Stats())
	return 0
}

func envOr(getenv func(string) string, key, fallback string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return fallback
}
