package statusview

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Style colours text for a terminal; the zero Style writes plain text.
type Style struct {
	Color bool
}

func (s Style) wrap(code, text string) string {
	if !s.Color || text == "" {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

// Good, Bad, Warn and Bold colour text green, red, yellow and bold.
func (s Style) Good(t string) string { return s.wrap("32", t) }
func (s Style) Bad(t string) string  { return s.wrap("31", t) }
func (s Style) Warn(t string) string { return s.wrap("33", t) }
func (s Style) Bold(t string) string { return s.wrap("1", t) }

// cell is a table cell: its text and how to colour it.
type cell struct {
	text  string
	color func(string) string
}

func plain(t string) cell { return cell{text: t} }

// table writes rows with columns padded to the widest cell, colouring after
// padding so escape codes do not disturb the alignment.
func table(w io.Writer, rows [][]cell) {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			t := c.text
			if i < len(r)-1 {
				t += strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.text)+2)
			}
			if c.color != nil {
				// colour the text, not the padding
				t = c.color(c.text) + t[len(c.text):]
			}
			b.WriteString(t)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// Text writes the report for people. now is the time ages are counted from.
func (r *Report) Text(w io.Writer, st Style, now time.Time) {
	fmt.Fprintf(w, "%s %s\n", st.Bold("Portico status from"), r.Server)

	fmt.Fprintf(w, "\n%s\n", st.Bold(fmt.Sprintf("POOLS (%d)", len(r.Pools))))
	if len(r.Pools) == 0 {
		fmt.Fprintln(w, "  none: create an IPAddressPool (see docs/allocation.md)")
	} else {
		rows := [][]cell{{plain("NAME"), plain("ADDRESSES"), plain("IPv4 USED/FREE"), plain("IPv6 USED/FREE"), plain("AUTO"), plain("READY")}}
		for _, p := range r.Pools {
			rows = append(rows, []cell{plain(p.Name), plain(strings.Join(p.Addresses, ", ")), plain(usage(p.IPv4)), plain(usage(p.IPv6)),
				plain(strconv.FormatBool(p.AutoAssign)), readyCell(st, p.Ready)})
		}
		table(indent(w), rows)
	}

	fmt.Fprintf(w, "\n%s\n", st.Bold(fmt.Sprintf("SERVICES (%d)", len(r.Services))))
	if len(r.Services) == 0 {
		fmt.Fprintln(w, "  no Service of type LoadBalancer")
	} else {
		rows := [][]cell{{plain("SERVICE"), plain("IP"), plain("POOL"), plain("ANNOUNCED BY")}}
		for _, s := range r.Services {
			name := s.Namespace + "/" + s.Name
			if s.Class != "" {
				name += " (class " + s.Class + ")"
			}
			if len(s.IPs) == 0 {
				rows = append(rows, []cell{plain(name), {"<pending>", st.Warn}, plain(s.Pool), {s.Pending, st.Warn}})
				continue
			}
			for i, ip := range s.IPs {
				first := plain(name)
				if i > 0 {
					first = plain("")
				}
				who, bad := announcedBy(ip)
				c := cell{text: who}
				if bad {
					c.color = st.Warn
				}
				rows = append(rows, []cell{first, plain(ip.IP), plain(s.Pool), c})
			}
		}
		table(indent(w), rows)
	}

	fmt.Fprintf(w, "\n%s\n", st.Bold(fmt.Sprintf("SPEAKERS (%d)", len(r.Speakers))))
	if len(r.Speakers) == 0 {
		fmt.Fprintln(w, "  none has reported: is the portico-speaker DaemonSet running? (kubectl -n portico-system get pods)")
	} else {
		rows := [][]cell{{plain("NODE"), plain("MEMBERS"), plain("L2 IPs"), plain("BGP SESSIONS"), plain("UPDATED")}}
		for _, s := range r.Speakers {
			updated := ""
			if s.UpdatedAt != nil {
				updated = age(now, *s.UpdatedAt) + " ago"
			}
			members := fmt.Sprintf("%d (%s)", len(s.Members), strings.Join(s.Members, ", "))
			if len(s.Sessions) == 0 {
				rows = append(rows, []cell{plain(s.Node), plain(members), plain(strconv.Itoa(int(s.L2IPs))), plain("-"), plain(updated)})
			}
			for i, b := range s.Sessions {
				row := []cell{plain(""), plain(""), plain(""), sessionCell(st, b, now), plain("")}
				if i == 0 {
					row[0], row[1], row[2], row[4] = plain(s.Node), plain(members), plain(strconv.Itoa(int(s.L2IPs))), plain(updated)
				}
				rows = append(rows, row)
			}
		}
		table(indent(w), rows)
	}

	if len(r.Problems) == 0 {
		fmt.Fprintf(w, "\n%s\n", st.Good("No problems."))
	} else {
		fmt.Fprintf(w, "\n%s\n", st.Bad(fmt.Sprintf("PROBLEMS (%d)", len(r.Problems))))
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s: %s: %s\n", st.Bold(p.Object), p.Reason, p.Message)
		}
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "%s %s\n", st.Warn("warning:"), warn)
	}
}

// indent writes through w with two leading spaces per line.
func indent(w io.Writer) io.Writer { return &indenter{w: w, start: true} }

type indenter struct {
	w     io.Writer
	start bool
}

func (in *indenter) Write(p []byte) (int, error) {
	for _, b := range p {
		if in.start {
			if _, err := in.w.Write([]byte("  ")); err != nil {
				return 0, err
			}
		}
		if _, err := in.w.Write([]byte{b}); err != nil {
			return 0, err
		}
		in.start = b == '\n'
	}
	return len(p), nil
}

func readyCell(st Style, ready string) cell {
	switch ready {
	case "True":
		return cell{ready, st.Good}
	case "False":
		return cell{ready, st.Bad}
	}
	return cell{ready, st.Warn}
}

// usage formats assigned/available, with very large IPv6 counts shortened.
func usage(u Usage) string {
	return count(u.Assigned) + "/" + count(u.Available)
}

func count(n int64) string {
	if n < 1_000_000 {
		return strconv.FormatInt(n, 10)
	}
	return strings.Replace(fmt.Sprintf("%.1e", float64(n)), "e+", "e", 1)
}

// announcedBy describes who announces an IP, and whether nobody does.
func announcedBy(ip ServiceIP) (string, bool) {
	var parts []string
	if l := ip.L2; l != nil {
		switch {
		case l.Node != "" && len(l.Interfaces) > 0:
			parts = append(parts, fmt.Sprintf("L2 %s (%s)", l.Node, strings.Join(l.Interfaces, ", ")))
		case l.Node != "":
			parts = append(parts, "L2 "+l.Node)
		default:
			parts = append(parts, "L2 nobody: "+l.Reason)
		}
	}
	if len(ip.BGP) > 0 {
		var nodes []string
		for _, b := range ip.BGP {
			peers := strings.Join(b.Peers, ", ")
			if peers == "" {
				peers = "no peer yet"
			}
			nodes = append(nodes, b.Node+" -> "+peers)
		}
		parts = append(parts, "BGP "+strings.Join(nodes, "; "))
	}
	if len(parts) == 0 {
		return "nobody yet (no ServiceAnnouncement for this IP: no advertisement covers its pool, or no speaker is running)", true
	}
	return strings.Join(parts, "; "), ip.L2 != nil && ip.L2.Node == "" && len(ip.BGP) == 0
}

func sessionCell(st Style, b Session, now time.Time) cell {
	t := fmt.Sprintf("%s %s %s", b.Peer, b.Address, b.State)
	if b.Since != nil {
		t += " " + age(now, *b.Since)
	}
	if b.BFDState != "" {
		t += " (BFD " + b.BFDState + ")"
	}
	if b.State == "Established" {
		t += ", " + strconv.Itoa(int(b.PrefixesAdvertised)) + " prefix"
		if b.PrefixesAdvertised != 1 {
			t += "es"
		}
		return cell{t, st.Good}
	}
	if b.LastError != "" {
		t += ": " + b.LastError
	}
	return cell{t, st.Bad}
}

// age formats a duration as kubectl does: 45s, 12m, 5h, 3d.
func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
