// Package topology runs a PBFT deployment as real processes on 127.0.0.1, for tests and
// for fault campaigns: one or three nats-server processes (three are clustered with
// routes), one cmd/replica process per replica id and, optionally, cmd/gateway in network
// mode and any number of cmd/gateway runs in stdio mode. It is the one process harness of
// the repository: the integration, topology, campaign and multi-process benchmark tests
// start their processes through it.
//
// Usage:
//
//	bins, err := topology.Build(ctx) // go build, once per process
//	top, err := topology.Start(ctx, bins, topology.Options{
//		NATSServers: 3, Replicas: []string{"replica-0", "replica-1", "replica-2", "replica-3"},
//		Cluster: "pbft", Auth: true, GatewayHTTP: true,
//	})
//	defer top.Close()
//	http.Get(top.GatewayURL() + "/v1/kv/x")
//	top.KillReplica("replica-1"); top.StartReplica("replica-1"); top.WaitReplicaReady(ctx, "replica-1")
//	top.KillNATS(0); top.StartNATS(0)
//	top.CutReplica("replica-2"); top.HealReplica("replica-2") // needs ProxyNATS
//
// The API (Build, Binaries, Options, Start and the methods of Topology) is stable:
// tests and the fault-campaign runner depend on it. Additions are fine; changes are not.
//
// Other methods: WaitReplicaReady, ReplicaRunning, ReplicaProcess, KillReplicas,
// StartNATSContext, NATSAddr, NATSURL, Password, KeysDir, Dir, DataDir, Replicas,
// NATSServers, GatewayLog, StartStdioGateway (a gateway in stdio mode whose stdin and
// stdout the caller gives, as one of Options.Clients). A Process is one run of a child:
// its exit (WaitExit, Err), its log since it started (Log), Kill. Proxy (NewProxy) is
// usable on its own. ModuleRoot finds this module's directory; a TestMain is
// os.Exit(topology.RunAndRemoveBuilds(m.Run)). Ports are picked free on 127.0.0.1 just
// before use; another process could take one in between: during Start, a NATS server,
// replica or gateway that ends saying "address already in use" gets new ports (three
// attempts in all); any other failure fails Start with the process's log in the error.
// A replica restarted with StartReplica keeps its port.
//
// What Start does:
//   - Keys: `replica keygen` writes a key pair for every replica id, for the gateway
//     (id "gateway") and for every id of Options.Clients into Dir/keys, unless Dir/keys
//     already has it; every process gets PBFT_KEYS_DIR.
//   - NATS: server i gets a config file Dir/nats/nats-<i>.conf, a client port, a route
//     port and a monitoring port, all free ports on 127.0.0.1 picked at start and kept
//     across KillNATS/StartNATS. Servers do not advertise their client URLs
//     (no_advertise), so clients use exactly the URLs they were given: that is what lets
//     a replica's proxy stand between it and NATS. Start waits until every route is up.
//   - Auth: deploy/k8s/nats/auth.conf (the production users and permissions) is copied
//     next to the configs and included; its password variables ($REPLICA_0_PASSWORD ...,
//     $GATEWAY_PASSWORD, and $CLIENT_PASSWORD and $MONITOR_PASSWORD of the NATS-API users
//     ClientUser and MonitorUser; PasswordEnv), one for every user it has, also those no
//     process of the topology is (replica-4 ... replica-7, admin), get random values in
//     nats-server's environment, and each process connects as its own user
//     (nats://id:password@...). auth.conf fixes the cluster name "pbft", the replica ids
//     replica-0 ... replica-7 and the gateway id "gateway", so Start refuses other names
//     with Auth, and AddReplica takes only a replica id it has a user for
//     (AuthReplicaIDs), as the pods a StatefulSet adds.
//   - Replicas: PBFT_NODE_ID, PBFT_NODE_IDS, PBFT_CLUSTER, PBFT_NATS_URL (every server,
//     or its own proxy with ProxyNATS), PBFT_HTTP_ADDR (a free port: ReplicaHTTP), with
//     DataDirs PBFT_DATA_DIR=Dir/data/<id>, then Options.Env. Start waits until every
//     replica's /readyz answers 200.
//   - Gateway (GatewayHTTP): cmd/gateway with PBFT_HTTP_ADDR (GatewayURL), PBFT_NATS_URL
//     (every server), PBFT_NODE_IDS, PBFT_CLUSTER, PBFT_CLIENT_ID=gateway, then
//     Options.Env; Start waits until its /readyz answers 200.
//
// Every process's stdout and stderr go to Dir/logs: nats-<i>.log, replica-<id>.log,
// gateway.log, stdio-<client id>.log (stderr only), appended across restarts
// (ReplicaLog, GatewayLog; Process.Log for one run). Processes get SIGKILL from Close (on Linux also when the process
// that started them dies). Close removes Dir if Start created it.
package topology
