package health

import (
	"errors"
	"testing"
)

func TestReportsChangesOnly(t *testing.T) {
	var got []string
	h := New(func(err error) {
		if err == nil {
			got = append(got, "ok")
			return
		}
		got = append(got, err.Error())
	})
	h.Set("hub", nil) // healthy from the start: nothing to say
	h.Set("hub", errors.New("hub down"))
	h.Set("hub", errors.New("hub down")) // the same again
	h.Set("records", errors.New("records unreadable"))
	h.Set("hub", nil)
	h.Set("records", nil)
	want := []string{"hub down", "hub down\nrecords unreadable", "records unreadable", "ok"}
	if len(got) != len(want) {
		t.Fatalf("reports %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("report %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestNilReportsNothing(t *testing.T) {
	var h *Health
	h.Set("hub", errors.New("x"))
	New(nil).Set("hub", errors.New("x"))
}
