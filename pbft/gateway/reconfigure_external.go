package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/client"
)

// ErrNotAdmin refuses pbft_reconfigure on a gateway whose identity is not the
// administrator's: the replicas would refuse it anyway, and this gateway cannot sign as
// the administrator. The protocol answers error 10 (not available here), as over HTTP.
var ErrNotAdmin = errors.New("gateway: this gateway's identity is not the administrator")

// Reconfigure changes the membership of the external replicas (client.Reconfigure) when
// the gateway's identity (PBFT_CLIENT_ID) is the administrator (PBFT_ADMIN_ID), and
// follows it: requests then go to the new members and answers wait for them.
func (x *External) Reconfigure(ctx context.Context, req client.Request, next []string) (uint64, pbft.Membership, error) {
	if x.admin == "" || x.client.ID() != x.admin {
		return 0, pbft.Membership{}, fmt.Errorf("%w: PBFT_CLIENT_ID %q, PBFT_ADMIN_ID %q", ErrNotAdmin, x.client.ID(), x.admin)
	}
	res, err := x.client.Reconfigure(ctx, req, next)
	if err != nil {
		return 0, pbft.Membership{}, err
	}
	return res.Seq, res.Membership, nil
}
