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
	switch founder := slices.Contains(s.InitialIDs, s.NodeID); {
	case founder && bool(s.Join):
		return fmt.Errorf("%w: PBFT_JOIN=on for %q, which PBFT_INITIAL_IDS names: it started the cluster", ErrInvalid, s.NodeID)
	case founder:
		s.NodeIDs = slices.Clone(s.InitialIDs)
	case !slices.Contains(s.NodeIDs, s.NodeID):
		return fmt.Errorf("%w: replica %q is neither in PBFT_INITIAL_IDS %v nor in PBFT_NODE_IDS %v, the membership it would join",
			ErrInvalid, s.NodeID, s.InitialIDs, s.NodeIDs)
	default:
		s.Join = true
	}
	return nil
}
