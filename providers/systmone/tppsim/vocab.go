package tppsim

type code struct {
	ctv3, snomed, text, unit string
	lo, hi                   float64
}

// A small CTV3/SNOMED vocabulary; one term has a non-ASCII letter so the
// Windows-1252 encoding shows in SRCode too.
var codes = []code{
	{ctv3: "2469.", snomed: "163030003", text: "O/E - Systolic BP reading", unit: "mmHg", lo: 95, hi: 170},
	{ctv3: "246A.", snomed: "163031004", text: "O/E - Diastolic BP reading", unit: "mmHg", lo: 55, hi: 105},
	{ctv3: "22K..", snomed: "60621009", text: "Body mass index", unit: "kg/m2", lo: 17, hi: 42},
	{ctv3: "XaPbt", snomed: "999791000000106", text: "Haemoglobin A1c level - IFCC standardised", unit: "mmol/mol", lo: 30, hi: 90},
	{ctv3: "XE0Uc", snomed: "59621000", text: "Essential hypertension"},
	{ctv3: "X40J5", snomed: "44054006", text: "Type 2 diabetes mellitus"},
	{ctv3: "H33..", snomed: "195967001", text: "Asthma"},
	{ctv3: "137R.", snomed: "77176002", text: "Current smoker"},
	{ctv3: "65E..", snomed: "86198006", text: "Influenza vaccination"},
	{ctv3: "F561.", snomed: "13445001", text: "Ménière's disease"},
}

type mappingGroup struct {
	id, desc string
	rows     [][2]string // RowIdentifier, Mapping
}

// Groups 4017 and 15777 are the ones TX's code comments cite; 1700 is made
// up for SREvent.ContactMethod.
var mappingGroups = []mappingGroup{
	{"1700", "Contact method", [][2]string{{"170001", "Face to face"}, {"170002", "Telephone"}, {"170003", "Home visit"}, {"170004", "Video consultation"}}},
	{"4017", "Visit follow-up", [][2]string{{"401701", "Unknown"}, {"401702", "No"}, {"401703", "Required"}, {"401704", "Booked"}}},
	{"15777", "Recall status", [][2]string{{"1577701", "Pending"}, {"1577702", "Completed"}, {"1577703", "Cancelled"}}},
}

var contactMethods = []string{"170001", "170001", "170002", "170003", "170004"}

var (
	maleNames     = []string{"George", "Oliver", "Harry", "Jack", "Mohammed", "Noah", "Arthur", "Leo", "Samuel", "José", "Ravi", "Tomasz"}
	femaleNames   = []string{"Amelia", "Zoë", "Renée", "Isla", "Ava", "Siân", "Grace", "Chloé", "Aisha", "Margaret", "Priya", "Zofia"}
	surnames      = []string{"Smith", "Jones", "Taylor", "Brown", "Hartley", "Oakes", "Khan", "Patel", "Wilson", "Brennan", "Müller", "Nowak", "O'Neill"}
	streets       = []string{"High Street", "Mill Lane", "Station Road", "Church Street", "Queens Park Road", "Cardigan Road"}
	towns         = []string{"Leeds", "Bradford", "Halifax", "Wakefield", "Harrogate", "Otley"}
	practiceNames = []string{"Brontë Surgery", "Mill Lane Practice", "Queens Park Medical Centre", "Station Road Surgery", "Café Quarter Health Centre", "Oakwood Group Practice"}
)
