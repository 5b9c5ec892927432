package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
	"gpubroker/workspaces"
)

// The dev server serves the starter projects and the simulator's record: an instance launched
// with the real workspace URL fetches the tarball from this very server, and
// /dev/gpu/instances shows its keys and files; POST …/fail kills it.
func TestDevGPUInstancesAndWorkspaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ws, err := workspaces.For("data-science", e.url)
	require.NoError(t, err)
	offers, err := e.m.Sim.ListOffers(context.Background(), gpu.OfferQuery{GPU: "a10"})
	require.NoError(t, err)
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDJ9n2dyq7VrY1Dg2H3rQ2sY3NCbLMtcrc4b0wXYZxZz ada@laptop"
	inst, err := e.m.Sim.Launch(context.Background(), gpu.LaunchRequest{Offer: offers[0], Name: "gpubroker-devtest",
		Image: e.m.JobDeps.Catalog.Templates[0].Image, IDE: gpu.IDEJupyter, SSHPublicKeys: []string{key}, IDESecret: "SECRET123", Workspace: ws})
	require.NoError(t, err)

	list := e.gpuInstances()
	require.Len(t, list, 1)
	require.Equal(t, inst.ID, list[0].ID)
	require.Equal(t, []string{key}, list[0].SSHAuthorizedKeys)
	require.Contains(t, list[0].WorkspaceFiles, "fine-tune.ipynb")
	require.Contains(t, list[0].WorkspaceFiles, "data/gpu-notes.txt")

	resp, err := e.client.Post(e.url+"/dev/gpu/instances/"+inst.ID+"/fail", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	got, err := e.m.Sim.GetInstance(context.Background(), inst.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateFailed, got.State)
}
