package main

import (
	"bufio"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
)

// A ptp-like previous result: the host's end (no sandbox) first, then the pod's eth0 with its address.
const prevResult = `{"cniVersion":"1.0.0","interfaces":[{"name":"veth1"},{"name":"eth0","sandbox":"/var/run/netns/p"}],
"ips":[{"interface":0,"address":"198.19.1.1/32"},{"interface":1,"address":"198.19.1.23/32","gateway":"198.19.1.1"}]}`

// fakeAgent answers every request with answer and records what it was asked.
func fakeAgent(t *testing.T, answer string) (string, <-chan Request) {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "cni.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	asked := make(chan Request, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadBytes('\n')
			var r Request
			if json.Unmarshal(line, &r) == nil {
				asked <- r
			}
			c.Write([]byte(answer + "\n"))
			c.Close()
		}
	}()
	return socket, asked
}

func conf(socket, extra string, withPrev bool) []byte {
	s := `{"cniVersion":"1.0.0","name":"pods","type":"natgate-cni","socket":"` + socket + `"` + extra
	if withPrev {
		s += `,"prevResult":` + prevResult
	}
	return []byte(s + "}")
}

func podArgs(stdin []byte) *skel.CmdArgs {
	return &skel.CmdArgs{ContainerID: "c1", Netns: "/var/run/netns/p", IfName: "eth0",
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=payments;K8S_POD_NAME=api-0;K8S_POD_INFRA_CONTAINER_ID=c1", StdinData: stdin}
}

func TestAddAsksTheAgentWithThePodsOwnAddressAndPassesThePreviousResultOn(t *testing.T) {
	socket, asked := fakeAgent(t, `{"gateways":[{"gateway":"gw","egressIP":"198.18.0.100"}]}`)
	_, prev, err := exchange("ADD", podArgs(conf(socket, "", true)))
	if err != nil {
		t.Fatal(err)
	}
	r := <-asked
	want := Request{Command: "ADD", ContainerID: "c1", Namespace: "payments", Name: "api-0", IP: "198.19.1.23"}
	if r != want {
		t.Fatalf("asked %+v, want %+v", r, want)
	}
	out, _ := json.Marshal(prev)
	if !strings.Contains(string(out), `"198.19.1.23/32"`) || !strings.Contains(string(out), `"sandbox":"/var/run/netns/p"`) {
		t.Fatalf("prevResult not passed through: %s", out)
	}
}

func TestAddFailsWhenTheAgentRefuses(t *testing.T) {
	socket, _ := fakeAgent(t, `{"error":"pod payments/api-0 not found"}`)
	_, _, err := exchange("ADD", podArgs(conf(socket, "", true)))
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("want the agent's refusal, got %v", err)
	}
}

func TestAddFailsClosedWhenTheAgentIsUnreachableUnlessAllowed(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	if _, _, err := exchange("ADD", podArgs(conf(missing, "", true))); err == nil ||
		!strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("default must fail ADD, got %v", err)
	}
	if _, prev, err := exchange("ADD", podArgs(conf(missing, `,"onAgentUnreachable":"allow"`, true))); err != nil || prev == nil {
		t.Fatalf("allow must pass the result on, got %v, %v", prev, err)
	}
}

func TestDelSucceedsWithoutAnAgentAndTellsOneThatRuns(t *testing.T) {
	if err := cmdDel(podArgs(conf(filepath.Join(t.TempDir(), "none.sock"), "", false))); err != nil {
		t.Fatalf("DEL without agent: %v", err)
	}
	socket, asked := fakeAgent(t, `{}`)
	if err := cmdDel(podArgs(conf(socket, "", false))); err != nil {
		t.Fatal(err)
	}
	if r := <-asked; r.Command != "DEL" || r.ContainerID != "c1" || r.Name != "api-0" {
		t.Fatalf("asked %+v", r)
	}
}

func TestAddNeedsAPreviousResultAndAValidConfiguration(t *testing.T) {
	socket, _ := fakeAgent(t, `{}`)
	if _, _, err := exchange("ADD", podArgs(conf(socket, "", false))); err == nil ||
		!strings.Contains(err.Error(), "prevResult") {
		t.Fatalf("want a prevResult error, got %v", err)
	}
	if _, _, err := exchange("ADD", podArgs(conf(socket, `,"onAgentUnreachable":"maybe"`, true))); err == nil ||
		!strings.Contains(err.Error(), "onAgentUnreachable") {
		t.Fatalf("want a field error, got %v", err)
	}
}

func TestContainersThatAreNotPodsPassWithoutAsking(t *testing.T) {
	socket, asked := fakeAgent(t, `{"error":"must not be asked"}`)
	args := podArgs(conf(socket, "", true))
	args.Args = ""
	if _, prev, err := exchange("ADD", args); err != nil || prev == nil {
		t.Fatalf("got %v, %v", prev, err)
	}
	select {
	case r := <-asked:
		t.Fatalf("asked %+v", r)
	default:
	}
}
