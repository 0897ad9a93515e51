// Small word lists for the classes with no format: person names, health terms, minors'
// indicators. They are deliberately small (recall on names outside them is low; see
// docs/security.md), and lower-cased for lookup.

/** Common given names across English, Spanish, German, French, Slavic, Indian, Chinese, Arabic, Japanese, West African usage. */
export const FIRST_NAMES: ReadonlySet<string> = new Set(
  (
    'james mary robert patricia john jennifer michael linda david elizabeth william barbara richard susan joseph jessica ' +
    'thomas sarah charles karen christopher lisa daniel nancy matthew betty anthony sandra mark margaret donald ashley ' +
    'steven kimberly paul emily andrew donna joshua michelle kenneth carol kevin amanda brian melissa george deborah ' +
    'timothy stephanie ronald rebecca edward laura jason helen jeffrey sharon ryan cynthia jacob kathleen gary amy ' +
    'nicholas angela eric anna jonathan ruth stephen brenda larry pamela justin nicole scott katherine brandon samantha ' +
    'benjamin christine samuel emma gregory catherine alexander debra frank rachel patrick carolyn raymond janet jack ' +
    'maria heather dennis diane jerry olivia tyler julie aaron joyce jose victoria adam kelly henry christina nathan ' +
    'lauren douglas joan zachary evelyn peter judith kyle megan noah andrea ethan cheryl jeremy hannah walter jacqueline ' +
    'christian martha keith gloria roger teresa terry sara austin janice sean marie gerald julia carl grace harold judy ' +
    'dylan theresa arthur madison lawrence beverly jordan denise jesse marilyn bryan amber billy danielle bruce rose ' +
    'gabriel brittany joe diana logan abigail albert natalie willie jane alan lori eugene alexis russell tiffany vincent ' +
    'kayla liam sophia mason isabella lucas mia oliver ava elijah charlotte carlos juan luis miguel javier alejandro ' +
    'sofia lucia valentina camila diego pablo fernando jorge ana carmen isabel elena pedro manuel antonio francisco ' +
    'lukas leon finn jonas felix max paul maximilian elias ben hannah lea lena leonie johanna katharina anja ' +
    'jean pierre louis hugo jules camille chloe manon ines lea sophie nathalie ' +
    'olga ivan dmitri sergei natasha anastasia tatiana alexei mikhail yuri svetlana irina katarzyna piotr tomasz ' +
    'priya rahul amit anjali deepak sunita ravi vikram arjun aisha neha pooja sanjay ' +
    'wei li ming jun hui yan xiao chen lei fang jing ' +
    'ahmed mohammed muhammad ali fatima omar hassan yusuf layla zainab khalid ' +
    'hiroshi yuki haruto sakura kenji takashi akira yui ren hana ' +
    'chinedu ngozi emeka adaeze kwame kofi ama abena oluwaseun funmilayo'
  ).split(/\s+/),
);

/** Given names that are also common words (a sentence-initial "Will" or "Grace"): they need a surname or context. */
export const AMBIGUOUS_FIRST_NAMES: ReadonlySet<string> = new Set(
  'will grace mark rose bill may june april august joy hope faith max ben jack frank art bob pat sue ray dawn lee jun li ren hana ming'.split(' '),
);

/** Titles that make the next capitalised word a name. */
export const NAME_TITLES = ['mr', 'mrs', 'ms', 'miss', 'dr', 'prof', 'sir', 'madam', 'mx'];

/** Health conditions, treatments and medication classes (special-category data). Longest first when matched. */
export const HEALTH_TERMS: readonly string[] = [
  'type 1 diabetes', 'type 2 diabetes', 'diabetes', 'hiv', 'aids', 'hepatitis a', 'hepatitis b', 'hepatitis c', 'hepatitis',
  'hypertension', 'high blood pressure', 'asthma', 'copd', 'depression', 'major depressive disorder', 'anxiety disorder',
  'panic disorder', 'ptsd', 'bipolar disorder', 'schizophrenia', 'adhd', 'autism', 'dementia', "alzheimer's", 'alzheimers',
  "parkinson's", 'parkinsons', 'epilepsy', 'multiple sclerosis', 'cancer', 'breast cancer', 'lung cancer', 'prostate cancer',
  'leukemia', 'lymphoma', 'melanoma', 'tumor', 'tumour', 'chemotherapy', 'radiotherapy', 'dialysis', 'kidney failure',
  'heart failure', 'heart attack', 'stroke', 'tuberculosis', 'covid-19', 'long covid', 'pregnancy', 'a pregnancy', 'miscarriage', 'abortion',
  'eating disorder', 'anorexia', 'bulimia', 'opioid addiction', 'an opioid addiction', 'addiction', 'alcoholism', 'substance abuse',
  'insulin', 'antidepressants', 'antidepressant', 'antipsychotics', 'methadone', 'chlamydia', 'syphilis', 'gonorrhea', 'herpes',
  'std', 'sti', 'ivf', 'infertility', 'suicidal', 'self-harm', 'obesity', 'arthritis', 'lupus', "crohn's disease", 'celiac disease',
];

/** Words near a health term that make it about a person's health. */
export const HEALTH_CONTEXT = ['diagnos', 'treated', 'treatment', 'prescri', 'patient', 'suffer', 'condition', 'doctor', 'clinic', 'hospital', 'symptom', 'medical', 'therapy', 'medication', 'has ', 'have ', 'with '];

/** Words near an age or grade that say it is a child's. */
export const MINOR_CONTEXT = ['son', 'daughter', 'child', 'kid', 'boy', 'girl', 'student', 'pupil', 'minor', 'teen', 'baby', 'toddler', 'grandson', 'granddaughter', 'nephew', 'niece', 'school'];
