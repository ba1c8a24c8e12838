// Command driver runs a CNI network configuration list through libcni, the
// library containerd's CRI plugin and other runtimes use, so polis-bridge is
// exercised exactly as a runtime calls it (result cache, capabilities,
// prevResult chaining, reverse-order DEL).
//
// Usage: driver VERB CONFLIST CACHE_DIR CNI_PATH CONTAINER_ID NETNS [CAPABILITY_ARGS_JSON]
// VERB is validate, add, check or del. add prints the final result as JSON.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
)

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
	caps := map[string]interface{}{}
	if len(args) > 6 {
		if err := json.Unmarshal([]byte(args[6]), &caps); err != nil {
			return fmt.Errorf("capability args: %w", err)
		}
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(cniPath), cacheDir, nil)
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0", CapabilityArgs: caps}
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
