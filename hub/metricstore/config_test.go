package metricstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// secret stands for an S3 secret key: no error may quote any of it.
const secret = "s3cr3tKEYs3cr3tKEY"

func writeBucketConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bucket.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestValidateBucketConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		dir     string
		content string // written to a file and set as BucketConfigFile; "-" means unset
		missing bool   // BucketConfigFile names no file
		want    []string
	}{
		{name: "no bucket", content: "-"},
		{name: "filesystem shorthand", dir: "/var/lib/fleetpulse/bucket", content: "-"},
		{name: "S3 file", content: "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9000\n  access_key: a\n  secret_key: " + secret + "\n"},
		{name: "lower-case type", content: "type: filesystem\nconfig: {directory: /tmp/b}\nprefix: hub\n"},
		{
			name: "both set", dir: "/tmp/b", content: "type: FILESYSTEM\nconfig: {directory: /tmp/b}\n",
			want: []string{"--storage.bucket.path", "--storage.bucket.config-file", "both set"},
		},
		{name: "missing file", missing: true, want: []string{"--storage.bucket.config-file", "no such file"}},
		{name: "no type", content: "config: {bucket: b}\n", want: []string{"--storage.bucket.config-file", "type is required", "S3"}},
		{name: "unknown type", content: "type: FTP\nconfig: {host: h}\n", want: []string{`type "FTP" is not one of`}},
		{name: "no config", content: "type: S3\n", want: []string{"config is required"}},
		{name: "unknown field", content: "type: S3\nconfig: {bucket: b}\nsecret_key: " + secret + "\n", want: []string{"not a bucket configuration", "secret_key"}},
		{name: "not YAML", content: "type: S3\nconfig: {bucket: b, secret_key: " + secret + ": x}\n", want: []string{"not a bucket configuration"}},
		{name: "not a mapping", content: secret + "\n", want: []string{"not a bucket configuration"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			cfg.BucketDir = tc.dir
			switch {
			case tc.missing:
				cfg.BucketConfigFile = filepath.Join(t.TempDir(), "absent.yaml")
			case tc.content != "-":
				cfg.BucketConfigFile = writeBucketConfig(t, tc.content)
			}
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error with %q", tc.want)
			}
			t.Logf("Validate() = %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secret[:4]) {
				t.Errorf("Validate() = %q quotes the secret", err)
			}
		})
	}
}

// TestValidateBucketSyncInterval: the bucket store syncs on a positive
// interval; without a bucket there is nothing to sync.
func TestValidateBucketSyncInterval(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		bucket   string
		interval time.Duration
		ok       bool
	}{
		{bucket: "/tmp/b", interval: 3 * time.Minute, ok: true},
		{bucket: "/tmp/b", interval: 0},
		{bucket: "/tmp/b", interval: -time.Second},
		{bucket: "", interval: 0, ok: true},
	} {
		cfg := DefaultConfig()
		cfg.BucketDir, cfg.BucketSyncInterval = tc.bucket, tc.interval
		err := cfg.Validate()
		if tc.ok != (err == nil) {
			t.Errorf("bucket %q, sync interval %s: Validate() = %v, want ok=%v", tc.bucket, tc.interval, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "bucket sync interval") {
			t.Errorf("Validate() = %q, want it to name the bucket sync interval", err)
		}
	}
}

// TestOpenBucketErrorsHideValues opens buckets whose configuration objstore
// refuses: the error names the file and the problem but quotes no value,
// since objstore's YAML errors quote up to 7 characters of one.
func TestOpenBucketErrorsHideValues(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"secret in a bool field": "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9000\n  insecure: " + secret + "\n",
		"secret as a list":       "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9000\n  access_key: a\n  secret_key: [" + secret + "]\n",
		"unknown S3 field":       "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9000\n  secret: " + secret + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := DefaultConfig()
			cfg.Dir = t.TempDir()
			cfg.BucketConfigFile = writeBucketConfig(t, content)
			s, err := Open(cfg, nil, nil)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open() = nil error, want objstore to refuse the configuration")
			}
			t.Logf("Open() = %v", err)
			if !strings.Contains(err.Error(), cfg.BucketConfigFile) {
				t.Errorf("Open() = %q, want it to name the file", err)
			}
			if strings.Contains(err.Error(), secret[:4]) {
				t.Errorf("Open() = %q quotes the secret", err)
			}
		})
	}
}

func TestRedactYAMLError(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"yaml: unmarshal errors:\n  line 5: cannot unmarshal !!str `s3cr3tK...` into bool": "yaml: unmarshal errors:\n  line 5: cannot unmarshal !!str <value> into bool",
		"a `x` b `y` c": "a <value> b <value> c",
		"open `half":    "open `half",
		"no quotes":     "no quotes",
	} {
		if got := redactYAMLError(errString(in)); got != want {
			t.Errorf("redactYAMLError(%q) = %q, want %q", in, got, want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
