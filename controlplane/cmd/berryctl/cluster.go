package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	berryv1 "github.com/berry-gateway/berry/pkg/api/berry/v1"
)

const clusterUsage = `usage: berryctl cluster status | add ID RAFT_ADDRESS | remove ID`

// cluster runs "berryctl cluster …": the members of a replicated control plane. add
// and remove may be sent to any member: a follower forwards them to the leader.
func (c *cli) cluster(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(clusterUsage)
	}
	switch args[0] {
	case "status":
		if len(args) != 1 {
			return errors.New(clusterUsage)
		}
		r, err := c.members.ClusterStatus(ctx, &berryv1.ClusterStatusRequest{})
		if err != nil {
			return err
		}
		if c.o.output != "table" {
			return c.print(r)
		}
		leader := r.GetLeaderId()
		if leader == "" {
			leader = "none (no majority reachable from this member)"
		}
		fmt.Fprintf(c.out, "member %s is %s; leader %s; term %d; config version %d\n", r.GetNodeId(), r.GetState(), leader, r.GetTerm(), r.GetConfigVersion())
		fmt.Fprintf(c.out, "log: last %d, committed %d, applied %d, last snapshot %d\n", r.GetLastLogIndex(), r.GetCommitIndex(), r.GetAppliedIndex(), r.GetLastSnapshotIndex())
		var rows [][]string
		for _, m := range r.GetMembers() {
			role := "follower"
			switch {
			case m.GetLeader():
				role = "leader"
			case !m.GetVoter():
				role = "non-voter"
			}
			grpcAddr := m.GetGrpcAddress()
			if grpcAddr == "" {
				grpcAddr = "-"
			}
			rows = append(rows, []string{m.GetId(), role, m.GetRaftAddress(), grpcAddr})
		}
		return c.table([]string{"MEMBER", "ROLE", "RAFT", "GRPC"}, rows)
	case "add":
		if len(args) != 3 {
			return errors.New(clusterUsage)
		}
		if _, err := c.members.AddMember(ctx, &berryv1.AddMemberRequest{Id: args[1], RaftAddress: args[2]}); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "added %s (%s) as a voting member\n", args[1], args[2])
		return nil
	case "remove":
		if len(args) != 2 {
			return errors.New(clusterUsage)
		}
		if _, err := c.members.RemoveMember(ctx, &berryv1.RemoveMemberRequest{Id: args[1]}); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "removed %s\n", strconv.Quote(args[1]))
		return nil
	}
	return errors.New(clusterUsage)
}
