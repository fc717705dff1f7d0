// Package tppsim simulates a TPP SystmOne client running a strategic
// report: it writes extract folders into a gateway root as the client
// would, following the report sheet found in the handoff directory.
//
// An extract is a folder yyyyMMdd_HHmm holding SRExtract.zip (or
// SRExtract.z01 … parts and SRExtract.zip), SRManifest.csv, SRMapping.csv
// and SRMappingGroup.csv, all Windows-1252, written under a temporary name
// and renamed when the set is complete. Rows are synthetic but plausible
// (Modulus 11 NHS numbers in the 999 range, the group's ODS codes,
// CTV3/SNOMED codes, TPP's date formats) and derived from a seed, so the
// same spec always gives the same bytes. Fault knobs reproduce what went
// wrong in the field (reference/supplier-formats.md §5).
//
// Sim chains extracts: a full one first, then deltas each starting where
// the previous ended, keeping its position in Root/.tppsim so a restarted
// simulator continues.
package tppsim
