package pbft

// The simulator's durable logs: what a restarted replica keeps, and what a crash loses.

// restart replaces replica i by a new one restored from its durable log, as a process
// killed at this instant and started again would be: what it had not made durable is
// lost, including its pending requests and timers.
func (s *sim) restart(i int) {
	s.t.Helper()
	r, app := s.newReplica(i)
	var records []Message
	for _, b := range s.disk[i] {
		m, err := Unmarshal(b)
		if err != nil {
			s.t.Fatalf("seed %d: replica %d durable record: %v", s.cfg.seed, i, err)
		}
		records = append(records, m)
	}
	if err := r.Restore(records); err != nil {
		for j, m := range records {
			s.t.Logf("record %d: %s", j, describeRecord(m))
		}
		s.t.Fatalf("seed %d: replica %d restore: %v", s.cfg.seed, i, err)
	}
	s.reps[i], s.apps[i] = r, app
	s.unsynced[i] = nil
	s.restarts++
	s.flush(i)
}

// persist keeps what Ready asks to keep, as pbft/node does: a Ready whose records are
// pre-prepares only and whose messages are votes (durable.go) sends them at once and
// leaves its records unsynced, until a later Ready or the writer (syncSome) syncs them;
// any other Ready syncs everything before its messages go out.
func (s *sim) persist(i int, rd Ready) {
	if rd.Compact != nil {
		s.disk[i], s.unsynced[i] = s.disk[i][:0:0], nil
		for _, m := range rd.Compact {
			s.disk[i] = append(s.disk[i], Marshal(m))
		}
	}
	lazy := rd.Compact == nil
	for _, m := range rd.Persist {
		_, pp := m.(*PrePrepare)
		lazy = lazy && pp
		s.unsynced[i] = append(s.unsynced[i], Marshal(m))
	}
	for _, o := range rd.Messages {
		switch o.Msg.(type) {
		case *PrePrepare, *Prepare:
		default:
			lazy = false
		}
	}
	if !lazy {
		s.sync(i)
	}
}

func (s *sim) sync(i int) {
	s.disk[i] = append(s.disk[i], s.unsynced[i]...)
	s.unsynced[i] = nil
}

// syncSome is the drivers' writers finishing their syncs at random moments.
func (s *sim) syncSome() {
	for i := range s.unsynced {
		if len(s.unsynced[i]) > 0 && s.syncRng.Intn(2) == 0 {
			s.sync(i)
		}
	}
}

type voteKey struct {
	replica int
	kind    Kind
	view    uint64
	seq     uint64
}

// noteVote fails the run if correct replica i votes for a second digest at one view and
// number: what a restarted replica that forgot its vote could do.
func (s *sim) noteVote(i int, m Message) {
	var k voteKey
	var d Digest
	switch m := m.(type) {
	case *PrePrepare:
		k, d = voteKey{i, m.Kind(), m.View, m.Seq}, m.Digest
	case *Prepare:
		k, d = voteKey{i, m.Kind(), m.View, m.Seq}, m.Digest
	case *Commit:
		k, d = voteKey{i, m.Kind(), m.View, m.Seq}, m.Digest
	default:
		return
	}
	if prev, ok := s.votes[k]; ok && prev != d {
		s.t.Fatalf("seed %d: replica %d sent %s for view %d seq %d with two digests (%d restarts)", s.cfg.seed, i, m.Kind(), k.view, k.seq, s.restarts)
	}
	s.votes[k] = d
}
