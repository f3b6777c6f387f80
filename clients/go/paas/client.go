// Package paas is the Go client of the PaaS Operator: generated Connect-Go clients of every
// service over gRPC (HTTP/2 cleartext), the API key sent as x-api-key, and typed errors.
package paas

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	rpc "paas-operator/clients/go/gen/google/rpc"
	"paas-operator/clients/go/gen/grpc/health/v1/healthv1connect"
	"paas-operator/clients/go/gen/paas/v1/paasv1connect"
)

// ErrorDomain is the ErrorInfo domain of the service's reasons.
const ErrorDomain = "paas.io"

// Client holds a typed client for every service.
type Client struct {
	Releases   paasv1connect.ReleaseServiceClient
	Namespaces paasv1connect.NamespaceServiceClient
	Operations paasv1connect.OperationServiceClient
	Audit      paasv1connect.AuditServiceClient
	Health     healthv1connect.HealthClient
}

// NewClient connects to addr ("127.0.0.1:8000" or "http://127.0.0.1:8000") with gRPC over
// cleartext HTTP/2 and sends apiKey on every call.
func NewClient(addr, apiKey string, opts ...connect.ClientOption) *Client {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	httpClient := &http.Client{Transport: &http.Transport{Protocols: protocols}}
	all := append([]connect.ClientOption{connect.WithGRPC(), connect.WithInterceptors(apiKeyInterceptor(apiKey))}, opts...)
	return &Client{
		Releases:   paasv1connect.NewReleaseServiceClient(httpClient, base, all...),
		Namespaces: paasv1connect.NewNamespaceServiceClient(httpClient, base, all...),
		Operations: paasv1connect.NewOperationServiceClient(httpClient, base, all...),
		Audit:      paasv1connect.NewAuditServiceClient(httpClient, base, all...),
		Health:     healthv1connect.NewHealthClient(httpClient, base, all...),
	}
}

type apiKeyInterceptor string

func (k apiKeyInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("x-api-key", string(k))
		return next(ctx, req)
	}
}

func (k apiKeyInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("x-api-key", string(k))
		return conn
	}
}

func (k apiKeyInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// Error is a failed call: its gRPC code and the service's ErrorInfo reason ("" when none).
type Error struct {
	Code    connect.Code
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Code.String() + ": " + e.Message }

// AsError reads a call's error as an *Error; false when err is not an RPC error.
func AsError(err error) (*Error, bool) {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return nil, false
	}
	out := &Error{Code: ce.Code(), Message: ce.Message()}
	for _, d := range ce.Details() {
		msg, derr := d.Value()
		if derr != nil {
			continue
		}
		if info, ok := msg.(*rpc.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
			out.Reason = info.GetReason()
		}
	}
	return out, true
}
