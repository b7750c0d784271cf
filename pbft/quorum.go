package pbft

// Quorum sizes for a cluster of n replicas. All protocol arithmetic goes through here so
// that nothing assumes n = 4.
//
// For n = 3f+1 these are the paper's numbers: a commit quorum of 2f+1 and a prepare
// certificate of 2f prepares (plus the pre-prepare). For other n (say 5 or 6, where f is
// still floor((n-1)/3)) a quorum of 2f+1 would no longer make two quorums share a correct
// replica, so the commit quorum is the smallest q with 2q - n >= f+1, i.e.
// floor((n+f)/2)+1, which equals 2f+1 exactly when n = 3f+1.
type Quorum struct {
	N int
	F int
}

// NewQuorum returns the quorum sizes for n replicas (n >= 1).
func NewQuorum(n int) Quorum { return Quorum{N: n, F: (n - 1) / 3} }

// Commit is the number of matching commits (and view-changes, and checkpoints) that make a
// certificate: any two such sets intersect in at least f+1 replicas, so in a correct one.
func (q Quorum) Commit() int { return (q.N+q.F)/2 + 1 }

// Prepare is the number of matching prepares from distinct backups that, with the
// primary's pre-prepare, make a prepared certificate.
func (q Quorum) Prepare() int { return q.Commit() - 1 }

// Weak is f+1: enough that at least one correct replica stands behind a claim (replies a
// client accepts, view-changes that make a replica join, checkpoint claims).
func (q Quorum) Weak() int { return q.F + 1 }

// Primary is the index of the primary of view v.
func (q Quorum) Primary(v uint64) int { return int(v % uint64(q.N)) }
