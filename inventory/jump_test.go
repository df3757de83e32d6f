package inventory

import (
	"reflect"
	"strings"
	"testing"
)

// jump (or bastion) on a group or a host: a ProxyJump string or a list;
// "none" goes direct; the host's own value wins.
func TestJump(t *testing.T) {
	inv, err := Parse("/inv/hosts.yml", []byte(`all:
  jump: jumper@bastion.example.com:2222
  hosts:
    inherits: {address: 10.0.0.1}
    chain:
      address: 10.0.0.2
      jump: [outer, "admin@[2001:db8::1]"]
    direct:
      jump: none
    commas:
      bastion: a,b:23
    named:
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]JumpHost{
		"inherits": {{User: "jumper", Address: "bastion.example.com", Port: 2222}},
		"chain":    {{Address: "outer"}, {User: "admin", Address: "2001:db8::1"}},
		"direct":   {},
		"commas":   {{Address: "a"}, {Address: "b", Port: 23}},
	}
	for name, hops := range want {
		h, _ := inv.Host(name)
		if !h.HasJump || !reflect.DeepEqual(h.Jump, hops) {
			t.Errorf("%s: jump %+v (set %v), want %+v", name, h.Jump, h.HasJump, hops)
		}
	}
	if h, _ := inv.Host("chain"); h.Jump[1].String() != "admin@[2001:db8::1]" || !h.HasAddress || h.HasPort {
		t.Errorf("chain = %+v", h)
	}
	if h, _ := inv.Host("named"); h.HasAddress || h.Address != "named" {
		t.Errorf("named = %+v", h)
	}
}

func TestJumpErrors(t *testing.T) {
	for in, want := range map[string]string{
		"jump: {a: b}":              "hosts.yml:4:13: jump: want",
		"jump: host:99999":          "hosts.yml:4:13: jump host \"host:99999\": invalid port",
		"jump: [a, [b]]":            "hosts.yml:4:17: jump: want",
		"jump: a\n      bastion: b": "hosts.yml:5:16: give jump or bastion, not both",
	} {
		_, err := Parse("hosts.yml", []byte("all:\n  hosts:\n    h:\n      "+in+"\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}
