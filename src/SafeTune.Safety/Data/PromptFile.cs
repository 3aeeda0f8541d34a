using System.Globalization;
using System.Text.Json.Nodes;
using SafeTune.Data;

namespace SafeTune.Safety.Data;

/// <summary>One prompt read from a data file, with where it came from.</summary>
/// <param name="Text">The prompt.</param>
/// <param name="Record">The record it was read from (all its fields, its file and position).</param>
public sealed record PromptEntry(string Text, TabularRecord Record)
{
    /// <summary>A stable id: the file name and the line (or Parquet row), e.g. <c>xstest_prompts.csv:12</c>.</summary>
    public string Id => Path.GetFileName(Record.Path) + ":" + Record.Position.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// Reads lists of prompts from data set files through <see cref="TabularFile"/>. A spec is
/// <c>PATH[:COLUMN][@FIELD=VALUE]...</c> (see <see cref="TabularSpec"/>): <c>:COLUMN</c> names the column or field holding
/// the prompt, and each <c>@FIELD=VALUE</c> keeps only the rows whose FIELD equals VALUE, e.g.
/// <c>xstest_prompts.csv@label=safe</c>. Formats by extension: <c>.csv</c> (RFC 4180: quoted fields may hold commas, doubled
/// quotes and newlines; the first record is the header), <c>.jsonl</c> (one JSON object per non-blank line),
/// <c>.parquet</c> (string columns) and <c>.txt</c> (one prompt per non-empty line).
/// Without a column the prompt field is the first of <see cref="PromptColumns"/> present (case-insensitive; per record in
/// JSONL). For JSONL records read through the <c>instruction</c> field, a non-empty <c>input</c> field (or the <c>input</c>
/// of the first element of an <c>instances</c> array, as in Self-Instruct) is appended after a newline.
/// </summary>
public static class PromptFile
{
    /// <summary>The spec syntax in one line, for command-line help.</summary>
    public const string SpecHelp =
        ".csv, .jsonl, .parquet or .txt; FILE:COLUMN names the prompt column (default: the first of prompt, goal, question, " +
        "forbidden_prompt, Behavior, instruction), FILE@FIELD=VALUE keeps rows whose FIELD is VALUE " +
        "(e.g. xstest_prompts.csv:prompt@label=safe); data:NAME in place of FILE names a public set (safetune data list).";

    /// <summary>The column names tried, in order, when no column is named.</summary>
    public static IReadOnlyList<string> PromptColumns { get; } = ["prompt", "goal", "question", "forbidden_prompt", "Behavior", "instruction"];

    /// <summary>Reads the prompts named by <paramref name="spec"/> (<c>PATH[:COLUMN][@FIELD=VALUE]...</c>).</summary>
    /// <param name="spec">The file, optionally with the prompt column and row filters.</param>
    /// <returns>One prompt per kept record, in file order.</returns>
    /// <exception cref="InvalidDataException">The file is empty, has no prompt column, holds a malformed record, has an
    /// unknown extension, or no row passes the filters.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static IReadOnlyList<string> Read(string spec) => [.. ReadEntries(spec).Select(e => e.Text)];

    /// <summary>Like <see cref="Read"/>, with each prompt's record (file, line or row, all fields).</summary>
    public static IReadOnlyList<PromptEntry> ReadEntries(string spec)
    {
        var parsed = TabularSpec.Parse(spec);
        var (data, records) = parsed.Read();
        var result = new List<PromptEntry>(records.Count);
        string? fileColumn = null;
        if (data.Format is TabularFormat.Csv or TabularFormat.Parquet)
            fileColumn = FindColumn(data.Columns, parsed.Column)
                ?? throw new InvalidDataException($"{data.Path}: {data.ColumnsLocation} has no column {Wanted(parsed.Column)}; {data.ColumnsFound}");
        foreach (var record in records)
        {
            if (data.Format == TabularFormat.Text)
            {
                result.Add(new PromptEntry(record.GetText("text")!, record));
                continue;
            }
            var name = fileColumn ?? FindColumn(record.FieldNames, parsed.Column)
                ?? throw new InvalidDataException($"{record.Location} has no field {Wanted(parsed.Column)}; fields found: {string.Join(", ", record.FieldNames)}");
            var text = record.GetText(name) ?? "";
            if (data.Format == TabularFormat.Jsonl && string.Equals(name, "instruction", StringComparison.OrdinalIgnoreCase))
            {
                var input = Input(record);
                if (!string.IsNullOrWhiteSpace(input)) text = text + "\n" + input;
            }
            result.Add(new PromptEntry(text, record));
        }
        return result;
    }

    /// <summary>
    /// Reads one named column (CSV, Parquet) or field (JSONL) of every kept record, for example XSTest's <c>label</c>; the
    /// values line up with the prompts from <see cref="Read"/> for the same spec. Non-string values are returned as their
    /// JSON text, missing ones as the empty string.
    /// </summary>
    /// <param name="spec">The file with optional row filters (a <c>:COLUMN</c> suffix, if any, is ignored).</param>
    /// <param name="column">The column or field name (case-insensitive).</param>
    /// <exception cref="InvalidDataException">The file is empty or malformed, lacks the column, or is a .txt file.</exception>
    public static IReadOnlyList<string> ReadColumn(string spec, string column)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(column);
        var parsed = TabularSpec.Parse(spec);
        if (TabularFile.FormatOf(parsed.Path) == TabularFormat.Text) throw new InvalidDataException($"{parsed.Path}: a .txt file has no columns");
        var (data, records) = parsed.Read();
        if (data.FindColumn(column) is null) throw new InvalidDataException($"{data.Path}: {data.ColumnsLocation} has no column '{column}'; {data.ColumnsFound}");
        return [.. records.Select(r => r.GetText(column) ?? "")];
    }

    /// <summary>Splits <c>PATH:COLUMN</c> (row filters aside); see <see cref="TabularSpec.Parse"/>.</summary>
    internal static (string Path, string? Column) ParseSpec(string spec)
    {
        var s = TabularSpec.Parse(spec);
        return (s.Path, s.Column);
    }

    private static string Wanted(string? column) => column is null ? "among " + string.Join(", ", PromptColumns) : "'" + column + "'";

    private static string? FindColumn(IReadOnlyList<string> names, string? column)
    {
        IEnumerable<string> wanted = column is null ? PromptColumns : [column];
        foreach (var w in wanted)
            foreach (var n in names)
                if (string.Equals(n.Trim(), w, StringComparison.OrdinalIgnoreCase)) return n;
        return null;
    }

    private static string? Input(TabularRecord record)
    {
        if (record.Get("input") is JsonValue v && TabularFile.Text(v) is { } direct) return direct;
        if (record.Get("instances") is JsonArray { Count: > 0 } instances && instances[0] is JsonObject first
            && first.TryGetPropertyValue("input", out var input) && input is JsonValue iv)
            return TabularFile.Text(iv);
        return null;
    }
}
