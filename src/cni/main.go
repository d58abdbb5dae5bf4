// Command natgate-cni is a chained CNI plugin: after the pod network plugin gave a pod its address, it asks the
// node's natgate agent (over a Unix socket) to put that address into the node's egress sets before the pod's
// containers start, so that a selected pod's first packet already leaves with its egress IP.
//
// The agent decides (it has the gateways' selectors, the namespaces' and the pod's labels); this plugin only
// reports the pod and waits for the answer. When the agent cannot be asked, ADD fails (the kubelet retries) unless
// the configuration says that no gateway drops: a pod must never start with its traffic leaving as the node.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// DefaultSocket is where the agent DaemonSet listens (a hostPath shared with the node).
const DefaultSocket = "/run/natgate/cni.sock"

// Conf is the plugin's entry in the node's conflist.
type Conf struct {
	types.PluginConf
	// Socket is the agent's Unix socket (default DefaultSocket).
	Socket string `json:"socket,omitempty"`
	// OnAgentUnreachable is "fail" (default: ADD fails and the kubelet retries) or "allow" (the pod starts without
	// natgate; only right where every gateway's failurePolicy is Allow).
	OnAgentUnreachable string `json:"onAgentUnreachable,omitempty"`
	// TimeoutMillis bounds one exchange with the agent, connection included (default 10000).
	TimeoutMillis int `json:"timeoutMillis,omitempty"`
}

// Request is one line of JSON to the agent.
type Request struct {
	Command     string `json:"command"` // ADD, DEL or CHECK
	ContainerID string `json:"containerID"`
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	IP          string `json:"ip,omitempty"`
}

// Answer is the agent's line of JSON: the gateways that select the pod (empty: none), or why it could not decide.
type Answer struct {
	Gateways []Selection `json:"gateways,omitempty"`
	Error    string      `json:"error,omitempty"`
}

// Selection names a gateway selecting the pod and the egress IP its traffic leaves with ("" when it has none now).
type Selection struct {
	Gateway  string `json:"gateway"`
	EgressIP string `json:"egressIP,omitempty"`
}

// errUnreachable marks failures to reach the agent at all, as opposed to answers that refuse.
var errUnreachable = errors.New("natgate agent unreachable")

type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE types.UnmarshallableString //nolint:revive // the kubelet's names
	K8S_POD_NAME      types.UnmarshallableString //nolint:revive
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck},
		version.PluginSupports("0.4.0", "1.0.0", "1.1.0"), "natgate-cni: steers selected pods to their egress IP from their first packet")
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, prev, err := exchange("ADD", args)
	if err != nil {
		return err
	}
	return types.PrintResult(prev, conf.CNIVersion) // passed through unchanged
}

func cmdCheck(args *skel.CmdArgs) error {
	_, _, err := exchange("CHECK", args)
	return err
}

func cmdDel(args *skel.CmdArgs) error {
	_, _, err := exchange("DEL", args)
	if errors.Is(err, errUnreachable) {
		return nil // DEL must succeed when there is nothing to do; an agent that is not running holds nothing for ADD
	}
	return err
}

// exchange parses the configuration, finds the pod and its address, and asks the agent. For ADD and CHECK it
// applies onAgentUnreachable; DEL leaves that to its caller.
func exchange(command string, args *skel.CmdArgs) (*Conf, types.Result, error) {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return nil, nil, err
	}
	if conf.PrevResult == nil && command != "DEL" {
		return nil, nil, fmt.Errorf("natgate-cni is a chained plugin: it needs a prevResult (put it after the pod network plugin)")
	}
	var k k8sArgs
	if err := types.LoadArgs(args.Args, &k); err != nil {
		return nil, nil, fmt.Errorf("CNI_ARGS: %w", err)
	}
	req := Request{Command: command, ContainerID: args.ContainerID, Namespace: string(k.K8S_POD_NAMESPACE),
		Name: string(k.K8S_POD_NAME)}
	if req.Namespace == "" || req.Name == "" {
		return conf, conf.PrevResult, nil // not a Kubernetes pod: no gateway can select it
	}
	if conf.PrevResult != nil {
		if req.IP, err = podIPv4(conf.PrevResult); err != nil {
			return nil, nil, err
		}
	}
	if req.IP == "" && command != "DEL" {
		return conf, conf.PrevResult, nil // no IPv4 address: natgate steers IPv4 only
	}
	answer, err := ask(conf, req)
	if err != nil {
		if errors.Is(err, errUnreachable) && command != "DEL" && conf.OnAgentUnreachable == "allow" {
			return conf, conf.PrevResult, nil
		}
		return conf, nil, err
	}
	if answer.Error != "" {
		return conf, nil, fmt.Errorf("natgate agent: %s", answer.Error)
	}
	return conf, conf.PrevResult, nil
}

func parseConf(stdin []byte) (*Conf, error) {
	conf := &Conf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, fmt.Errorf("natgate-cni configuration: %w", err)
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return nil, err
	}
	if conf.Socket == "" {
		conf.Socket = DefaultSocket
	}
	switch conf.OnAgentUnreachable {
	case "":
		conf.OnAgentUnreachable = "fail"
	case "fail", "allow":
	default:
		return nil, fmt.Errorf("natgate-cni configuration: onAgentUnreachable must be \"fail\" or \"allow\", not %q",
			conf.OnAgentUnreachable)
	}
	if conf.TimeoutMillis <= 0 {
		conf.TimeoutMillis = 10000
	}
	return conf, nil
}

// podIPv4 is the first IPv4 address of the pod's own (sandbox) interfaces in the previous result.
func podIPv4(prev types.Result) (string, error) {
	res, err := current.NewResultFromResult(prev)
	if err != nil {
		return "", fmt.Errorf("prevResult: %w", err)
	}
	for _, ip := range res.IPs {
		if ip.Address.IP.To4() == nil {
			continue
		}
		if ip.Interface != nil && *ip.Interface >= 0 && *ip.Interface < len(res.Interfaces) &&
			res.Interfaces[*ip.Interface].Sandbox == "" {
			continue // the host's end of the link, not the pod's
		}
		return ip.Address.IP.String(), nil
	}
	return "", nil
}

// ask sends one request and reads one answer within the configured time.
func ask(conf *Conf, req Request) (*Answer, error) {
	timeout := time.Duration(conf.TimeoutMillis) * time.Millisecond
	c, err := net.DialTimeout("unix", conf.Socket, timeout)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", errUnreachable, conf.Socket, err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	line, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("%w at %s: %v", errUnreachable, conf.Socket, err)
	}
	reply, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		// Connected but no answer in time (or the agent went away): it may have half-applied; fail, the kubelet retries.
		return nil, fmt.Errorf("natgate agent at %s did not answer %s for %s/%s: %v", conf.Socket, req.Command,
			req.Namespace, req.Name, err)
	}
	var answer Answer
	if err := json.Unmarshal(reply, &answer); err != nil {
		return nil, fmt.Errorf("natgate agent answered %q: %w", reply, err)
	}
	return &answer, nil
}
