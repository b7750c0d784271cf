package bus

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"

	"github.com/nats-io/nats.go"
)

// sinkServer is a minimal fake NATS server on the far end of a net.Pipe:
// it answers PINGs and discards everything else. Allocation tests run
// against it because an embedded nats-server, running in this process,
// allocates per message itself and would be counted too.
type sinkServer struct{}

func (sinkServer) InProcessConn() (net.Conn, error) {
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		if _, err := io.WriteString(server, `INFO {"server_id":"sink","version":"2.10.0","proto":1,"max_payload":1048576,"headers":true}`+"\r\n"); err != nil {
			return
		}
		r := bufio.NewReaderSize(server, 64<<10)
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return
			}
			// Payloads in these tests are zeros, so never look like PING.
			if bytes.Equal(line, []byte("PING\r\n")) {
				if _, err := io.WriteString(server, "PONG\r\n"); err != nil {
					return
				}
			}
		}
	}()
	return client, nil
}

// Send and Broadcast, once their subjects are cached, should not allocate:
// they are the hot path.
func TestNATSSendAllocs(t *testing.T) {
	nc, err := ConnectInProcess(nil, "n1")
	if err == nil {
		t.Fatal("ConnectInProcess(nil) succeeded")
	}
	nc, err = connectSink()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tr, err := NewNATS(nc, "test", "n1", RoleReplica, func(Message) {})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	data := make([]byte, 128)
	send := testing.AllocsPerRun(10000, func() { _ = tr.Send("n2", "prepare", data) })
	bcast := testing.AllocsPerRun(10000, func() { _ = tr.Broadcast("prepare", data) })
	if send > 0 || bcast > 0 {
		t.Errorf("allocs per Send %v, per Broadcast %v; want 0", send, bcast)
	}
}

func connectSink() (*nats.Conn, error) {
	return nats.Connect("", append(connOptions("n1"), nats.InProcessServer(sinkServer{}))...)
}
