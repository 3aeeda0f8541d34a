using SafeTune.Data;
using SafeTune.Safety.Data;

namespace SafeTune.Safety.Critics;

/// <summary>A judge item read from a file, with the record's id when it has one.</summary>
/// <param name="Item">The prompt and response.</param>
/// <param name="Id">The record's <c>id</c> field or column, or null when it has none.</param>
public sealed record JudgeFileItem(JudgeItem Item, string? Id);

/// <summary>
/// Reads (prompt, response) pairs for a judge from a data file (<c>.jsonl</c>, <c>.csv</c> or <c>.parquet</c>, through
/// <see cref="TabularFile"/>; a spec may carry row filters, <c>FILE@FIELD=VALUE</c>). Columns are found by name,
/// case-insensitively: the prompt among <see cref="PromptFile.PromptColumns"/> and the response among
/// <see cref="ResponseColumns"/>, unless named. As in <see cref="PromptFile"/>, a prompt read from an <c>instruction</c>
/// field is followed by a non-empty <c>input</c> field (Alpaca layout). JSON values that are not strings are taken as
/// their JSON text; a JSON null is empty.
/// </summary>
public static class JudgeItemFile
{
    /// <summary>The response column names tried, in order, when none is named.</summary>
    public static IReadOnlyList<string> ResponseColumns { get; } = ["response", "output", "target", "answer", "completion", "reply"];

    /// <summary>Reads every record of <paramref name="spec"/> as a judge item.</summary>
    /// <param name="spec">A .jsonl, .csv or .parquet file, optionally with row filters.</param>
    /// <param name="promptColumn">The prompt column (default: the first of <see cref="PromptFile.PromptColumns"/> present).</param>
    /// <param name="responseColumn">The response column (default: the first of <see cref="ResponseColumns"/> present).</param>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="InvalidDataException">The file is empty or malformed, or a column is missing (the message lists the columns found, with the line).</exception>
    public static IReadOnlyList<JudgeItem> Read(string spec, string? promptColumn = null, string? responseColumn = null) =>
        [.. ReadRows(spec, promptColumn, responseColumn).Select(r => r.Item)];

    /// <summary>
    /// Reads every record of <paramref name="spec"/> as a judge item with the record's <c>id</c> field or column, when it
    /// has one (an <c>eval --out</c> file's ids name each prompt's file and line), so that scores can be joined back.
    /// </summary>
    /// <inheritdoc cref="Read"/>
    public static IReadOnlyList<JudgeFileItem> ReadRows(string spec, string? promptColumn = null, string? responseColumn = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        var parsed = TabularSpec.Parse(spec, allowColumn: false);
        if (TabularFile.FormatOf(parsed.Path) == TabularFormat.Text)
            throw new InvalidDataException($"{parsed.Path}: a judge reads prompt and response columns; use .jsonl, .csv or .parquet");
        var (data, records) = parsed.Read();
        var items = new List<JudgeFileItem>(records.Count);
        foreach (var record in records)
        {
            var names = record.FieldNames;
            var p = Find(names, promptColumn, PromptFile.PromptColumns) ?? throw Missing(data, record, "prompt", promptColumn, PromptFile.PromptColumns);
            var r = Find(names, responseColumn, ResponseColumns) ?? throw Missing(data, record, "response", responseColumn, ResponseColumns);
            var prompt = record.GetText(p) ?? "";
            if (string.Equals(p, "instruction", StringComparison.OrdinalIgnoreCase)
                && Find(names, "input", []) is { } input && record.GetText(input) is { } extra && !string.IsNullOrWhiteSpace(extra))
                prompt += "\n" + extra;
            var id = Find(names, "id", []) is { } idField ? record.GetText(idField) : null;
            items.Add(new JudgeFileItem(new JudgeItem(prompt, record.GetText(r) ?? ""), id));
        }
        if (items.Count == 0) throw new InvalidDataException($"{spec}: no record passes the filters");
        return items;
    }

    private static string? Find(IReadOnlyList<string> names, string? wanted, IReadOnlyList<string> defaults)
    {
        IEnumerable<string> candidates = wanted is null ? defaults : [wanted];
        foreach (var c in candidates)
            foreach (var n in names)
                if (string.Equals(n.Trim(), c, StringComparison.OrdinalIgnoreCase)) return n;
        return null;
    }

    private static InvalidDataException Missing(TabularData data, TabularRecord record, string role, string? wanted, IReadOnlyList<string> defaults)
    {
        string kind = data.Format == TabularFormat.Jsonl ? "field" : "column";
        var found = record.FieldNames;
        return new($"{record.Location}: no {role} {kind} " + (wanted is null ? $"among {string.Join(", ", defaults)}" : $"'{wanted}'")
            + $"; {kind}s found: {(found.Count == 0 ? "none" : string.Join(", ", found))}");
    }
}
