package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// devLogFile is the full log of 'dev up' inside its state folder.
const devLogFile = "fleetpulse.log"

// devLoggers split the local fleet's logs: everything goes to the log file in
// the state folder, while the terminal shows the fleet's own progress and, of
// the hub, the test bed and the agents, only warnings and errors. Start-up
// chatter (a TSDB per shard, every control plane) would otherwise push the
// banner out of sight.
type devLoggers struct {
	progress *slog.Logger // dev's own steps: terminal and file
	quiet    *slog.Logger // the rest: file, and the terminal from Warn up
	path     string
	file     *os.File
}

func openDevLoggers(lf *logFlags, dir string) (*devLoggers, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create fleet state %s: %w", dir, err)
	}
	path := filepath.Join(dir, devLogFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open fleet log: %w", err)
	}
	toFile, err := lf.handler(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	terminal := slog.Default().Handler()
	return &devLoggers{
		progress: slog.New(slog.NewMultiHandler(toFile, terminal)).With("component", "dev"),
		quiet:    slog.New(slog.NewMultiHandler(toFile, minLevel{terminal, slog.LevelWarn})),
		path:     path,
		file:     f,
	}, nil
}

func (l *devLoggers) close() { l.file.Close() }

// minLevel passes on records of at least its level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}
