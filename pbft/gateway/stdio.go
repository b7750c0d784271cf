package gateway

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"

	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// maxLine bounds one input line; a longer one is reported and skipped.
const maxLine = 16 << 20

// Stdio runs the client protocol over JSON lines: lines from in, replies to out, in the
// order of the lines they answer.
//
// Lines are parsed ahead and handled one after another, except that a pbft_execute,
// once its request is ordered, waits for its replies in the background while the
// following lines go on, and that with PBFT_STDIO_WINDOW above 1 new pbft_requests to
// the primary go in runs (stdio_pipeline.go). Status, cluster and fault lines first
// wait for those, so every answer reflects exactly the lines before it.
type Stdio struct {
	svc *Service
	log *slog.Logger

	slots    chan *slot
	inflight sync.WaitGroup
	ids      *requestIDs
	pipe     *pipeline // nil: one pbft_request at a time
}

// slot is one reply, filled in when it is ready.
type slot struct {
	src, dest string
	body      jsonl.Object
	ready     chan struct{}
}

// NewStdio returns a stdio engine over svc.
func NewStdio(svc *Service, logger *slog.Logger) *Stdio {
	return &Stdio{svc: svc, log: logger, ids: newRequestIDs(), pipe: newPipeline(svc.settings.StdioWindow, svc.settings.ViewChangeTimeout)}
}

// Run reads every line of in, writes the replies to out, and returns once every reply
// owed is written (at end of input, after what is still in flight finishes or times out).
func (s *Stdio) Run(ctx context.Context, in io.Reader, out io.Writer) error {
	s.slots = make(chan *slot, 1024)
	writerDone := make(chan error, 1)
	go func() { writerDone <- s.write(out) }()

	// Lines are read and parsed on a goroutine of their own, ahead of the one that
	// handles them in order: parsing is most of the reader's work, and a stream of
	// requests would otherwise wait for it on one core.
	chunks := make(chan []*jsonl.Line, 4)
	var err error
	go func() {
		err = s.read(in, chunks)
		close(chunks) // after err is set: Run reads it once chunks is drained
	}()
	for chunk := range chunks {
		for _, l := range chunk {
			s.handleLine(ctx, l)
		}
		if len(chunks) == 0 {
			// The next line may be a while: send the requests gathered so far.
			s.flush(ctx)
		}
	}
	s.flush(ctx)
	s.inflight.Wait()
	close(s.slots)
	werr := <-writerDone
	if err != nil {
		return err
	}
	return werr
}

// maxChunk bounds the lines parsed ahead in one chunk.
const maxChunk = 128

// read parses the lines of in into chunks, skipping (and reporting) bad ones; a chunk
// ends where the input has nothing more buffered, so that a line written alone is
// handled at once. It returns at the end of in, with its error if not EOF.
func (s *Stdio) read(in io.Reader, chunks chan<- []*jsonl.Line) error {
	br := bufio.NewReaderSize(in, 64<<10)
	var chunk []*jsonl.Line
	for {
		line, tooLong, rerr := readLine(br, maxLine)
		if tooLong {
			s.log.Error("input line too long, skipped", "limit", maxLine)
		} else if len(line) > 0 {
			if l, err := jsonl.Parse(line); err != nil {
				s.log.Warn("skipping input line", "err", err, "line", truncate(line))
			} else {
				chunk = append(chunk, l)
			}
		}
		if rerr != nil || br.Buffered() == 0 || len(chunk) >= maxChunk {
			if len(chunk) > 0 {
				chunks <- chunk
				chunk = nil
			}
		}
		if rerr != nil {
			if rerr != io.EOF {
				return rerr
			}
			return nil
		}
	}
}

// readLine returns the next line without its newline. A line longer than max is
// consumed and reported as tooLong, so one bad line never ends the input.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		chunk, e := br.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			tooLong = true
			line = line[:0]
		} else if !tooLong {
			line = append(line, chunk...)
		}
		if e == bufio.ErrBufferFull {
			continue
		}
		if n := len(line); n > 0 && line[n-1] == '\n' {
			line = line[:n-1]
		}
		return line, tooLong, e
	}
}

// write emits replies in line order, numbering them with the process's msg_id counter.
func (s *Stdio) write(out io.Writer) error {
	w := bufio.NewWriter(out)
	var msgID int64
	var buf []byte
	var err error
	for sl := range s.slots {
		select {
		case <-sl.ready:
		default:
			// The next reply is not ready: what is written must not wait for it.
			if e := w.Flush(); e != nil && err == nil {
				err = e
			}
			<-sl.ready
		}
		body := append(sl.body, jsonl.Field{Key: "msg_id", Value: msgID})
		msgID++
		buf = jsonl.Append(buf[:0], jsonl.Object{{Key: "src", Value: sl.src}, {Key: "dest", Value: sl.dest}, {Key: "body", Value: body}})
		buf = append(buf, '\n')
		if _, e := w.Write(buf); e != nil && err == nil {
			err = e
		}
		// Flush unless the next reply is already waiting: a harness may never close stdin.
		if len(s.slots) == 0 {
			if e := w.Flush(); e != nil && err == nil {
				err = e
			}
		}
	}
	if e := w.Flush(); e != nil && err == nil {
		err = e
	}
	return err
}

func (s *Stdio) handleLine(ctx context.Context, l *jsonl.Line) {
	sl := &slot{src: l.Dest, dest: l.Src, ready: make(chan struct{})}
	select {
	case s.slots <- sl:
	default:
		// The writer waits for an answer: the requests gathered must be on their way.
		s.flush(ctx)
		s.slots <- sl
	}
	// The session numbers its requests only against its own embedded cluster; against
	// external replicas other gateways may number theirs too, so msg_id stays the
	// timestamp there.
	ids := s.ids
	if b := s.svc.Backend(); b != nil && !b.InProcess() {
		ids = nil
	}
	if s.pipe != nil {
		if s.gather(ctx, l, ids, sl) {
			return
		}
		// Any other line sees the requests before it answered, and may change faults.
		s.waitPipeline(ctx)
		s.pipe.allLive = 0
	}
	answer := func(hooks handleHooks) {
		body, pe := s.svc.Handle(ctx, l, hooks)
		if pe != nil {
			body = errorBody(l, pe)
		}
		sl.body = body
		close(sl.ready)
	}
	if l.Type != "pbft_execute" {
		answer(handleHooks{stdio: true, settle: s.inflight.Wait, ids: ids})
		return
	}
	// The request is ordered before the next line is read, so requests keep line order;
	// its replies are awaited in the background while the next lines go on.
	ordered := make(chan struct{})
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		answer(handleHooks{stdio: true, ordered: sync.OnceFunc(func() { close(ordered) }), ids: ids})
	}()
	<-ordered
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
