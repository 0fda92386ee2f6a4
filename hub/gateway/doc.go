// Package gateway is the agent side of the hub: the mux of the agents'
// mutual-TLS port, and what every agent request passes through once, in
// this order, before a handler sees it:
//
//   - a request ID: the caller's X-Request-Id when it is a short token,
//     else a new one; echoed in the answer and added to every log line
//     written with the request's context (LogHandler);
//   - readiness: 503 with Retry-After until the hub is ready, except for
//     health probes (Probe);
//   - authentication: the cluster the verified client certificate speaks
//     for, proven by an Authenticator (registration's, which checks that
//     the certificate's registration still stands; without registration,
//     CommonName), put in the request's context as an Identity
//     (IdentityFrom). No certificate is 401; a deregistered cluster 403
//     with X-Fleetpulse-Deregistered. Routes that must answer strangers
//     (the bootstrap-token registration, the CA, probes) say so with
//     Unauthenticated or Probe;
//   - per-cluster limits: the cluster's request rate (hub/limits), on the
//     routes that take RateLimited;
//   - metrics: fleetpulse_hub_agent_requests_total{cluster,handler,code}
//     and fleetpulse_hub_agent_request_duration_seconds{handler}; Forget
//     deletes a deregistered cluster's label values.
//
// Handlers register their routes on the Gateway and read the caller from
// IdentityFrom(r.Context()); they never look at the certificate again.
package gateway
