package events

import (
	"errors"
	"fmt"
	"io"
)

// maxValueDepth bounds how deep attribute and body values (arrays and maps
// of values) may nest. The OTLP decoder recurses once per level without a
// limit of its own: a 30 MiB body of nested arrays overflows the goroutine
// stack, a fatal error no recover catches, and takes the hub down.
const maxValueDepth = 64

// fieldsPerEvent is the average number of protobuf fields a request may
// spend per log record. The decoder allocates tens of bytes per field, and
// a field can be encoded in two bytes: without a bound a request of a few
// tens of MiB decodes into gigabytes. An agent's event takes 80 to 100, and
// the limit is on the request's total: a full batch of the agent's 8192
// events may average 156.
const fieldsPerEvent = 128

// requestShape is what inspect learned of an OTLP logs request's encoding.
type requestShape struct {
	records, fields int
}

// limitError is a request over one of the limits, and the status to refuse
// it with.
type limitError struct {
	status int
	reason string // refusal label value
	msg    string
}

func (e *limitError) Error() string { return e.msg }

// inspect walks an ExportLogsServiceRequest's encoding before it is decoded,
// without allocating: it counts log records and fields, and refuses values
// nested past maxValueDepth. It reads tags and lengths as the pdata decoder
// does (the same int32 field numbers, the same varint rule), so the decoder
// cannot see a structure this walk did not.
func inspect(b []byte, maxRecords int) (requestShape, error) {
	w := walker{maxFields: maxRecords * fieldsPerEvent, maxRecords: maxRecords}
	err := w.message(b, msgRequest, 0)
	return w.shape, err
}

// The messages on the way from the request to the values, by the fields
// that lead on (field numbers from opentelemetry-proto).
type msgKind int

const (
	msgRequest      msgKind = iota // ExportLogsServiceRequest
	msgResourceLogs                // ResourceLogs
	msgResource                    // Resource
	msgEntityRef                   // EntityRef
	msgScopeLogs                   // ScopeLogs
	msgScope                       // InstrumentationScope
	msgLogRecord                   // LogRecord
	msgKeyValue                    // KeyValue
	msgAnyValue                    // AnyValue
	msgArrayValue                  // ArrayValue
	msgKeyValueList                // KeyValueList
)

var children = map[msgKind]map[int32]msgKind{
	msgRequest:      {1: msgResourceLogs},
	msgResourceLogs: {1: msgResource, 2: msgScopeLogs, 1000: msgScopeLogs},
	msgResource:     {1: msgKeyValue, 3: msgEntityRef},
	msgScopeLogs:    {1: msgScope, 2: msgLogRecord},
	msgScope:        {3: msgKeyValue},
	msgLogRecord:    {5: msgAnyValue, 6: msgKeyValue},
	msgKeyValue:     {2: msgAnyValue},
	msgAnyValue:     {5: msgArrayValue, 6: msgKeyValueList},
	msgArrayValue:   {1: msgAnyValue},
	msgKeyValueList: {1: msgKeyValue},
}

var errMalformed = errors.New("malformed protobuf")

type walker struct {
	shape                 requestShape
	maxFields, maxRecords int
}

func (w *walker) message(b []byte, kind msgKind, depth int) error {
	if kind == msgAnyValue {
		if depth++; depth > maxValueDepth {
			return &limitError{status: 400, reason: refusedTooDeep,
				msg: fmt.Sprintf("OTLP logs request: attribute or body values nest deeper than the limit of %d levels", maxValueDepth)}
		}
	}
	if kind == msgLogRecord {
		if w.shape.records++; w.shape.records > w.maxRecords {
			return &limitError{status: 413, reason: refusedTooManyEvents,
				msg: fmt.Sprintf("OTLP logs request has more than %d log records, the limit of events per request", w.maxRecords)}
		}
	}
	for pos := 0; pos < len(b); {
		tag, next, err := varint(b, pos)
		if err != nil {
			return err
		}
		pos = next
		num, typ := int32(tag>>3), tag&7
		if num <= 0 {
			return fmt.Errorf("%w: field number %d", errMalformed, num)
		}
		if w.shape.fields++; w.shape.fields > w.maxFields {
			return &limitError{status: 413, reason: refusedTooManyFields,
				msg: fmt.Sprintf("OTLP logs request has more than %d fields, the limit of %d per event times %d events per request", w.maxFields, fieldsPerEvent, w.maxRecords)}
		}
		if typ != 2 {
			if pos, err = skip(b, pos, typ); err != nil {
				return err
			}
			continue
		}
		start, end, err := span(b, pos)
		if err != nil {
			return err
		}
		if child, ok := children[kind][num]; ok {
			if err := w.message(b[start:end], child, depth); err != nil {
				return err
			}
		}
		pos = end
	}
	return nil
}

// skip passes a field of wire type typ other than length-delimited at pos
// exactly as the decoder's ConsumeUnknown does, quirks included: group
// start and end tags are passed until the first other field, which ends
// the skip.
func skip(b []byte, pos int, typ uint64) (int, error) {
	depth := 0
	for pos < len(b) {
		var err error
		switch typ {
		case 0:
			_, pos, err = varint(b, pos)
			return pos, err
		case 1, 5:
			if pos += 4; typ == 1 {
				pos += 4
			}
			if pos > len(b) {
				return 0, fmt.Errorf("%w: %w", errMalformed, io.ErrUnexpectedEOF)
			}
			return pos, nil
		case 2:
			_, end, err := span(b, pos)
			return end, err
		case 3:
			depth++
		case 4:
			if depth == 0 {
				return 0, fmt.Errorf("%w: unexpected end of group", errMalformed)
			}
			depth--
		default:
			return 0, fmt.Errorf("%w: wire type %d", errMalformed, typ)
		}
		if depth == 0 {
			return pos, nil
		}
		var tag uint64
		if tag, pos, err = varint(b, pos); err != nil {
			return 0, err
		}
		if int32(tag>>3) <= 0 {
			return 0, fmt.Errorf("%w: field number %d", errMalformed, int32(tag>>3))
		}
		typ = tag & 7
	}
	return 0, fmt.Errorf("%w: %w", errMalformed, io.ErrUnexpectedEOF)
}

// span reads a length at pos and returns where the bytes it counts start
// and end.
func span(b []byte, pos int) (start, end int, err error) {
	n, start, err := varint(b, pos)
	if err != nil {
		return 0, 0, err
	}
	end = start + int(n)
	if int(n) < 0 || end < start || end > len(b) {
		return 0, 0, fmt.Errorf("%w: %w", errMalformed, io.ErrUnexpectedEOF)
	}
	return start, end, nil
}

// varint reads a varint as the pdata decoder does.
func varint(b []byte, pos int) (uint64, int, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			return 0, 0, fmt.Errorf("%w: varint overflows 64 bits", errMalformed)
		}
		if pos >= len(b) {
			return 0, 0, fmt.Errorf("%w: %w", errMalformed, io.ErrUnexpectedEOF)
		}
		c := b[pos]
		pos++
		v |= uint64(c&0x7F) << shift
		if c < 0x80 {
			return v, pos, nil
		}
	}
}
