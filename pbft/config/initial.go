package config

import (
	"fmt"
	"slices"
)

// resolveInitial applies PBFT_INITIAL_IDS. The pods of a Kubernetes StatefulSet share one
// environment, yet the replicas the cluster started with and those added later must
// start differently: a founder starts in configuration 0, whose members are the initial
// ids (a restarted one then finds the configuration in force in its durable log, the
// snapshot at its stable checkpoint), while a later replica joins the membership the
// operator reconfigures to. The pod's own id decides, so one template serves both.
func (s *Settings) resolveInitial() error {
	if len(s.InitialIDs) == 0 || s.NodeID == "" {
		return nil
	}
	switch {
	case bool(s.Join):
		return fmt.Errorf("%w: PBFT_JOIN and PBFT_INITIAL_IDS: with PBFT_INITIAL_IDS the replica decides whether it joins", ErrInvalid)
	case slices.Contains(s.InitialIDs, s.NodeID):
		s.NodeIDs = slices.Clone(s.InitialIDs)
	case !slices.Contains(s.NodeIDs, s.NodeID):
		return fmt.Errorf("%w: replica %q is neither in PBFT_INITIAL_IDS %v nor in PBFT_NODE_IDS %v, the membership it would join",
			ErrInvalid, s.NodeID, s.InitialIDs, s.NodeIDs)
	default:
		s.Join = true
	}
	return nil
}
