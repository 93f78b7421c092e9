package faults

import (
	"strconv"
	"time"
)

// Figure is one measured figure, printed by `make bench` as
// "BENCH name value unit", like every other benchmark's.
type Figure struct{ Name, Value, Unit string }

func (f Figure) String() string { return "BENCH " + f.Name + " " + f.Value + " " + f.Unit }

func count(name string, n int, unit string) Figure {
	return Figure{name, strconv.Itoa(n), unit}
}

func seconds(name string, d time.Duration) Figure {
	return Figure{name, strconv.FormatFloat(d.Seconds(), 'f', 3, 64), "s"}
}

// SoakFigures are a soak's figures, named soak_*.
func SoakFigures(r *SoakResult) []Figure {
	answered := seconds("soak_answered_after_faults", r.AnsweredAfter)
	if !r.AllAnswered {
		answered = Figure{"soak_answered_after_faults", "never", "(not all Services answered by one node within the settle time)"}
	}
	return []Figure{
		seconds("soak_duration", r.Elapsed),
		count("soak_services_created", r.Created, "services"),
		count("soak_services_deleted", r.Deleted, "services"),
		count("soak_api_errors", r.APIErrors, "requests"),
		count("soak_speaker_kills", r.SpeakerKills, "faults"),
		count("soak_link_flaps", r.LinkFlaps, "faults"),
		count("soak_controller_restarts", r.ControllerRestarts, "faults"),
		count("soak_api_outages", r.APIOutages, "faults"),
		count("soak_sample_rounds", r.Rounds, "rounds"),
		count("soak_samples", r.Samples, "samples"),
		seconds("soak_unanswered", r.Unanswered),
		seconds("soak_unanswered_longest", r.UnansweredLongest),
		seconds("soak_unanswered_in_fault_windows", r.UnansweredExcused),
		count("soak_double_answers", len(r.DoubleAnswers), "samples"),
		count("soak_foreign_answers", len(r.ForeignAnswers), "samples"),
		count("soak_duplicate_ips", len(r.Duplicates), "ips"),
		count("soak_services_without_ip", len(r.WithoutIP), "services"),
		answered,
		count("soak_orphan_serviceannouncements", len(r.OrphanAnnouncements), "objects"),
		count("soak_stale_announcement_entries", len(r.StaleEntries), "entries"),
		count("soak_orphan_speakerstatuses", len(r.OrphanSpeakerStatuses), "objects"),
		count("soak_events", r.Events, "events"),
		count("soak_events_idle_growth", r.EventsIdleGrowth, "events"),
		count("soak_orphans_after_cleanup", len(r.LeaksAfterCleanup.OrphanAnnouncements)+
			len(r.LeaksAfterCleanup.StaleEntries)+len(r.LeaksAfterCleanup.OrphanSpeakerStatuses), "objects"),
	}
}

// BurstFigures are a leader burst's figures, named leader_*.
func BurstFigures(r *BurstResult) []Figure {
	return []Figure{
		count("leader_burst_services", r.Services, "services"),
		count("leader_burst_allocated_before_kill", r.AllocatedBeforeKill, "services"),
		seconds("leader_kill_to_new_lease", r.Takeover),
		seconds("leader_kill_to_first_allocation", r.FirstAllocation),
		seconds("leader_kill_to_all_allocated", r.AllAllocated),
		count("leader_allocations_in_flight_at_kill", r.InFlight, "services"),
		count("leader_duplicate_ips", len(r.Duplicates), "ips"),
		count("leader_services_without_ip", r.Services-r.Allocated, "services"),
	}
}
