package serieslimit

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Config is the processor's configuration.
type Config struct {
	// Include lists metric-name regular expressions (fully anchored) that may
	// pass; empty lets every name pass.
	Include []string `mapstructure:"include"`
	// Exclude lists metric-name regular expressions that never pass.
	Exclude []string `mapstructure:"exclude"`
	// MaxSeriesPerMetric caps distinct series per metric name; 0 means no cap.
	MaxSeriesPerMetric int `mapstructure:"max_series_per_metric"`
	// SeriesTTL is how long a series not seen keeps its slot.
	SeriesTTL time.Duration `mapstructure:"series_ttl"`

	_ struct{}
}

func createDefaultConfig() *Config {
	return &Config{MaxSeriesPerMetric: 10000, SeriesTTL: 10 * time.Minute}
}

// Validate returns every problem, naming the fields.
func (c *Config) Validate() error {
	var errs []error
	for field, pats := range map[string][]string{"include": c.Include, "exclude": c.Exclude} {
		for _, p := range pats {
			if _, err := regexp.Compile("^(?:" + p + ")$"); err != nil {
				errs = append(errs, fmt.Errorf("%q pattern %q: %w", field, p, err))
			}
		}
	}
	if c.MaxSeriesPerMetric < 0 {
		errs = append(errs, fmt.Errorf(`"max_series_per_metric" must not be negative, got %d`, c.MaxSeriesPerMetric))
	}
	if c.SeriesTTL <= 0 {
		errs = append(errs, fmt.Errorf(`"series_ttl" must be positive, got %s`, c.SeriesTTL))
	}
	return errors.Join(errs...)
}

func compileAll(pats []string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, 0, len(pats))
	for _, p := range pats {
		out = append(out, regexp.MustCompile("^(?:"+p+")$")) // Validate has compiled them
	}
	return out
}
