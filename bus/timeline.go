package bus

// The latency timeline (issue 19): with the build tag pbft_timeline and
// PBFT_TIMELINE_DIR set, every process stamps the wall clock at each step a
// message takes (timeline_on.go) and writes the stamps to <dir>/<pid>.tl;
// tests/topology/latency_timeline_test.go reads them back and breaks one
// client's requests down hop by hop. Processes on one machine share
// CLOCK_REALTIME, so stamps compare across processes. Without the tag (every
// normal build) Stamp is empty and inlined away, and connections get no
// extra options: the timeline costs nothing.

// Timeline stages, in the order a message meets them.
const (
	StageInvoke  = 'A' // a client's request begins (client.Invoke)
	StagePublish = 'P' // a message handed to nats.go (Publish)
	StageWrite   = 'W' // nats.go writes to the server's socket (its flusher goroutine)
	StageRead    = 'R' // nats.go read from the server's socket (its reader goroutine)
	StageDeliver = 'D' // a subscription callback got a message (its own goroutine)
	StageHandle  = 'H' // the replica's node loop picked the message up
	StageStepped = 'S' // the replica's core stepped it
	StageWoken   = 'K' // the client's request goroutine resumed with its quorum
	StageName    = 'I' // an endpoint's id, once per transport: names the process
)
