// Command driver runs a CNI network configuration list through libcni, the
// library containerd's CRI plugin and other runtimes use, so polis-bridge is
// exercised exactly as a runtime calls it (result cache, capabilities,
// prevResult chaining, reverse-order DEL).
//
// Usage: driver VERB CONFLIST CACHE_DIR CNI_PATH CONTAINER_ID NETNS [CAPABILITY_ARGS_JSON]
// VERB is validate, add, check or del. add prints the final result as JSON.
//
// cri-add, cri-check and cri-del call the runtime as containerd 1.6's CRI
// does (pkg/cri/server/sandbox_run.go, cniNamespaceOpts, through go-cni):
// CAPABILITY_ARGS_JSON is {"portMappings": [...], "bandwidth": {...},
// "dns": {...}, "annotations": {...}}, decoded into go-cni's own types, so
// libcni marshals them into runtimeConfig exactly as for containerd (go-cni's
// PortMapping, BandWidth and DNS have no json tags: "HostPort", ...); the
// pod annotations go under "io.kubernetes.cri.pod-annotations" and CNI_ARGS
// carry CRI's pod labels.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	gocni "github.com/containerd/go-cni"
	"github.com/containernetworking/cni/libcni"
)

// criPod is what the CRI code reads from a PodSandboxConfig, as go-cni types.
type criPod struct {
	PortMappings []gocni.PortMapping `json:"portMappings"`
	Bandwidth    *gocni.BandWidth    `json:"bandwidth"`
	DNS          *gocni.DNS          `json:"dns"`
	Annotations  map[string]string   `json:"annotations"`
}

// criRuntimeConf builds the RuntimeConf go-cni's Namespace.config builds for
// containerd's CRI.
func criRuntimeConf(id, netns, raw string) (*libcni.RuntimeConf, error) {
	var pod criPod
	if raw != "" {
		if err := json.Unmarshal([]byte(raw), &pod); err != nil {
			return nil, fmt.Errorf("CRI pod: %w", err)
		}
	}
	caps := map[string]interface{}{"io.kubernetes.cri.pod-annotations": pod.Annotations}
	if len(pod.PortMappings) > 0 {
		caps["portMappings"] = pod.PortMappings
	}
	if pod.Bandwidth != nil {
		caps["bandwidth"] = *pod.Bandwidth
	}
	if pod.DNS != nil {
		caps["dns"] = *pod.DNS
	}
	labels := [][2]string{
		{"K8S_POD_NAMESPACE", "default"},
		{"K8S_POD_NAME", "polis-test"},
		{"K8S_POD_INFRA_CONTAINER_ID", id},
		{"K8S_POD_UID", "00000000-0000-0000-0000-000000000001"},
		{"IgnoreUnknown", "1"},
	}
	return &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0", Args: labels, CapabilityArgs: caps}, nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "libcni driver:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 6 {
		return fmt.Errorf("usage: driver VERB CONFLIST CACHE_DIR CNI_PATH CONTAINER_ID NETNS [CAPABILITY_ARGS_JSON]")
	}
	verb, confPath, cacheDir, cniPath, id, netns := args[0], args[1], args[2], args[3], args[4], args[5]
	list, err := libcni.ConfListFromFile(confPath)
	if err != nil {
		return fmt.Errorf("loading %s: %w", confPath, err)
	}
	raw := ""
	if len(args) > 6 {
		raw = args[6]
	}
	var rt *libcni.RuntimeConf
	if strings.HasPrefix(verb, "cri-") {
		verb = strings.TrimPrefix(verb, "cri-")
		if rt, err = criRuntimeConf(id, netns, raw); err != nil {
			return err
		}
	} else {
		caps := map[string]interface{}{}
		if raw != "" {
			if err := json.Unmarshal([]byte(raw), &caps); err != nil {
				return fmt.Errorf("capability args: %w", err)
			}
		}
		rt = &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0", CapabilityArgs: caps}
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(cniPath), cacheDir, nil)
	ctx := context.Background()
	switch verb {
	case "validate":
		_, err = cni.ValidateNetworkList(ctx, list)
		return err
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return err
		}
		return res.Print()
	case "check":
		return cni.CheckNetworkList(ctx, list, rt)
	case "del":
		return cni.DelNetworkList(ctx, list, rt)
	}
	return fmt.Errorf("unknown verb %q", verb)
}
