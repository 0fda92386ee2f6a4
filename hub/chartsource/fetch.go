package chartsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"oras.land/oras-go/v2/registry/remote/auth"
	"sigs.k8s.io/yaml"
)

// errBodyTooLarge ends a read past the limit of its fetch.
var errBodyTooLarge = errors.New("response body past the size limit")

// limitTransport refuses responses larger than max bytes, by their
// Content-Length or while they are read. Helm's HTTP getter reads a body
// whole before anyone can look at its size, so the hub fetches repository
// files itself and hands the registry client this transport.
type limitTransport struct {
	base http.RoundTripper
	max  int64
}

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%s is %d bytes, more than %d: %w", req.URL.Redacted(), resp.ContentLength, t.max, errBodyTooLarge)
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: t.max}
	return resp, nil
}

type limitedBody struct {
	io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// fetched is a chart archive and where it came from.
type fetched struct {
	archive []byte
	version string
	digest  string // sha256:<hex> of the archive
	url     string // redacted: no credentials
}

func (r *Renderer) client(max int64) *http.Client {
	return &http.Client{Transport: limitTransport{base: r.transport, max: max}, Timeout: r.limits.FetchTimeout}
}

// get reads one file of an HTTP repository; the credentials go only to the
// repository's own scheme and host, as Helm does.
func (r *Renderer) get(ctx context.Context, src *Source, target string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fail(ReasonInvalid, "chart URL %q: %v", target, err)
	}
	if base, err := url.Parse(src.RepoURL); err == nil && base.Scheme == req.URL.Scheme && base.Host == req.URL.Host && src.Username != "" {
		req.SetBasicAuth(src.Username, src.Password)
	}
	resp, err := r.client(max).Do(req)
	if err != nil {
		return nil, fetchError(fmt.Errorf("get %s: %w", req.URL.Redacted(), err))
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fail(ReasonFetchFailed, "get %s: %s", req.URL.Redacted(), resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fetchError(fmt.Errorf("read %s: %w", req.URL.Redacted(), err))
	}
	return b, nil
}

// fetchError names a size overrun as such, anything else as a failed fetch.
func fetchError(err error) *Error {
	if errors.Is(err, errBodyTooLarge) || strings.Contains(err.Error(), errBodyTooLarge.Error()) {
		return &Error{Reason: ReasonTooLarge, Err: err}
	}
	return &Error{Reason: ReasonFetchFailed, Err: err}
}

// fetchRepo finds the chart's version in the repository's index and reads
// its archive, checking it against the digest the index gives.
func (r *Renderer) fetchRepo(ctx context.Context, src *Source) (*fetched, error) {
	indexURL := strings.TrimSuffix(src.RepoURL, "/") + "/index.yaml"
	data, err := r.get(ctx, src, indexURL, r.limits.MaxIndexBytes)
	if err != nil {
		return nil, err
	}
	var index repo.IndexFile
	if err := yaml.Unmarshal(data, &index); err != nil || index.APIVersion == "" {
		return nil, fail(ReasonFetchFailed, "%s is not a chart repository index: %v", redact(indexURL), err)
	}
	index.SortEntries()
	cv, err := index.Get(src.Chart, src.Version)
	if err != nil || len(cv.URLs) == 0 {
		return nil, fail(ReasonNotFound, "chart %s version %q is not in %s", src.Chart, src.Version, redact(src.RepoURL))
	}
	archiveURL, err := repo.ResolveReferenceURL(src.RepoURL, cv.URLs[0])
	if err != nil {
		return nil, fail(ReasonFetchFailed, "chart %s %s: archive URL %q: %v", src.Chart, cv.Version, cv.URLs[0], err)
	}
	archive, err := r.get(ctx, src, archiveURL, r.limits.MaxChartBytes)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(archive)
	digest := hex.EncodeToString(sum[:])
	if cv.Digest != "" && !strings.EqualFold(strings.TrimPrefix(cv.Digest, "sha256:"), digest) {
		return nil, fail(ReasonFetchFailed, "chart %s %s from %s: digest %s, the index says %s", src.Chart, cv.Version, redact(archiveURL), digest, cv.Digest)
	}
	return &fetched{archive: archive, version: cv.Version, digest: "sha256:" + digest, url: redact(archiveURL)}, nil
}

// fetchOCI pulls the chart from a registry with Helm's registry client: the
// reference is the repository URL without oci://, the chart's name and the
// version as tag.
func (r *Renderer) fetchOCI(src *Source) (*fetched, error) {
	ref := strings.TrimSuffix(strings.TrimPrefix(src.RepoURL, "oci://"), "/") + "/" + src.Chart + ":" + src.Version
	hc := r.client(r.limits.MaxChartBytes)
	// Credentials come from the source alone, never from the hub's own
	// Helm or Docker configuration.
	cred := auth.EmptyCredential
	if src.Username != "" {
		cred = auth.Credential{Username: src.Username, Password: src.Password}
	}
	opts := []registry.ClientOption{
		registry.ClientOptHTTPClient(hc),
		registry.ClientOptAuthorizer(auth.Client{Client: hc, Credential: auth.StaticCredential(hostOf(ref), cred), Cache: auth.NewCache()}),
	}
	if src.PlainHTTP {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	rc, err := registry.NewClient(opts...)
	if err != nil {
		return nil, fail(ReasonFetchFailed, "registry client for %s: %v", ref, err)
	}
	res, err := rc.Pull(ref, registry.PullOptWithChart(true))
	if err != nil {
		if strings.Contains(err.Error(), "not found") {
			return nil, fail(ReasonNotFound, "pull %s: %v", ref, err)
		}
		return nil, fetchError(fmt.Errorf("pull %s: %w", ref, err))
	}
	if res.Chart == nil || len(res.Chart.Data) == 0 {
		return nil, fail(ReasonFetchFailed, "pull %s: no chart layer", ref)
	}
	version := src.Version
	if res.Chart.Meta != nil {
		version = res.Chart.Meta.Version
	}
	return &fetched{archive: res.Chart.Data, version: version, digest: res.Chart.Digest, url: "oci://" + ref}, nil
}

func hostOf(ref string) string {
	host, _, _ := strings.Cut(ref, "/")
	return host
}

// redact drops any user information from a URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	return u.Redacted()
}
