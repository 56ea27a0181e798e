package main

import (
	"strings"
	"testing"
)

func TestPostfixConfigPolicyLines(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args         []string
		want, absent []string
	}{
		{[]string{"--policy", "inet:127.0.0.1:8893"},
			[]string{
				"reject_unauth_destination, check_policy_service { inet:127.0.0.1:8893, default_action=DUNNO }\n",
				"smtpd_policy_service_default_action = DUNNO\n",
				"smtpd_milters = inet:127.0.0.1:8891\n",
				"decided by the milter",
			},
			[]string{"smtpd_data_restrictions ="}},
		{[]string{"--policy", "unix:/run/bm/policy", "--milter", "off"},
			[]string{
				"smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, check_policy_service { unix:/run/bm/policy, default_action=DUNNO }\n",
				"smtpd_data_restrictions = check_policy_service { unix:/run/bm/policy, default_action=DUNNO }\n",
				"smtpd_policy_service_default_action = DUNNO\n",
				"nothing signs outbound mail here",
			},
			[]string{"smtpd_milters"}},
		{nil, nil, []string{"check_policy_service", "smtpd_policy_service_default_action"}},
	} {
		out, errOut, code := runCLI(t, append([]string{"postfix-config", "--data-dir", dir}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: no %q in\n%s", tc.args, w, out)
			}
		}
		for _, a := range tc.absent {
			if strings.Contains(out, a) {
				t.Errorf("%v: %q should not be in\n%s", tc.args, a, out)
			}
		}
	}
}
