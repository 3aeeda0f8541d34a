namespace SafeTune.Data;

/// <summary>
/// Keeps the records whose field <see cref="Field"/> equals <see cref="Value"/> (as text, case-insensitive), written
/// <c>@FIELD=VALUE</c> after a file name, for example <c>xstest_prompts.csv@label=safe</c>.
/// </summary>
/// <param name="Field">The column or field compared.</param>
/// <param name="Value">The value a kept record has there.</param>
public sealed record RowFilter(string Field, string Value)
{
    /// <summary>True when <paramref name="record"/>'s field, as text, equals <see cref="Value"/> (ordinal, case-insensitive).</summary>
    public bool Matches(TabularRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var text = record.GetText(Field);
        return text is not null && string.Equals(text, Value, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// The records of <paramref name="data"/> that pass every filter.
    /// </summary>
    /// <exception cref="InvalidDataException">A filter names a field no record has (the columns found are listed), or no
    /// record passes (the values found are listed).</exception>
    public static IReadOnlyList<TabularRecord> Apply(TabularData data, IReadOnlyList<RowFilter> filters)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(filters);
        IReadOnlyList<TabularRecord> kept = data.Records;
        foreach (var f in filters)
        {
            if (data.FindColumn(f.Field) is null)
                throw new InvalidDataException($"{data.Path}: {data.ColumnsLocation} has no column '{f.Field}' for the filter @{f.Field}={f.Value}; {data.ColumnsFound}");
            var next = kept.Where(f.Matches).ToList();
            if (next.Count == 0)
            {
                var values = kept.Select(r => r.GetText(f.Field) ?? "null").Distinct(StringComparer.OrdinalIgnoreCase).Take(11).ToList();
                var list = string.Join(", ", values.Take(10)) + (values.Count > 10 ? ", ..." : "");
                throw new InvalidDataException($"{data.Path}: no row has {f.Field}={f.Value}; values of '{f.Field}' found: {list}");
            }
            kept = next;
        }
        return kept;
    }

    /// <inheritdoc/>
    public override string ToString() => $"@{Field}={Value}";
}

/// <summary>
/// A data file reference as written on the command line: <c>PATH[:COLUMN][@FIELD=VALUE]...</c>. <c>:COLUMN</c> names the
/// column that holds the text; each <c>@FIELD=VALUE</c> keeps only the rows whose FIELD equals VALUE (case-insensitive;
/// several filters must all hold). A path that exists as written is never split. <c>data:NAME</c> in place of PATH names a
/// registered public data set (<see cref="Public.PublicData"/>), fetched when needed.
/// </summary>
/// <param name="Path">The file.</param>
/// <param name="Column">The column named after a colon, if any.</param>
/// <param name="Filters">The row filters, in the order written.</param>
public sealed record TabularSpec(string Path, string? Column, IReadOnlyList<RowFilter> Filters)
{
    /// <summary>
    /// Splits a spec. A colon starts a column name only when what follows holds no path separator (so <c>C:\data.csv</c> is a
    /// path); an <c>@</c> starts a filter only when what follows has the form <c>FIELD=VALUE</c>.
    /// </summary>
    /// <param name="spec">The text to split.</param>
    /// <param name="allowColumn">False when the caller has no use for a column; a colon then stays part of the path.</param>
    public static TabularSpec Parse(string spec, bool allowColumn = true)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        if (Public.PublicData.IsDataName(spec))
        {
            int end = spec.AsSpan(Public.PublicData.Prefix.Length).IndexOfAny(':', '@');
            end = end < 0 ? spec.Length : end + Public.PublicData.Prefix.Length;
            spec = Public.PublicData.Resolve(spec[..end]) + spec[end..];
        }
        var rest = spec;
        var filters = new List<RowFilter>();
        while (!File.Exists(rest))
        {
            int at = rest.LastIndexOf('@');
            if (at <= 0) break;
            var tail = rest[(at + 1)..];
            int eq = tail.IndexOf('=');
            if (eq <= 0) break;
            var field = tail[..eq];
            if (field.IndexOfAny(['/', '\\', ':']) >= 0) break;
            filters.Insert(0, new RowFilter(field, tail[(eq + 1)..]));
            rest = rest[..at];
        }
        string? column = null;
        int colon = rest.LastIndexOf(':');
        if (allowColumn && colon > 1 && colon < rest.Length - 1 && !File.Exists(rest))
        {
            var tail = rest[(colon + 1)..];
            if (tail.IndexOfAny(['/', '\\']) < 0)
            {
                column = tail;
                rest = rest[..colon];
            }
        }
        return new TabularSpec(rest, column, filters);
    }

    /// <summary>Reads the file and applies the filters.</summary>
    /// <returns>The file and the records that pass the filters (at least one).</returns>
    public (TabularData Data, IReadOnlyList<TabularRecord> Records) Read()
    {
        var data = TabularFile.Read(Path);
        if (Filters.Count > 0 && data.Format == TabularFormat.Text)
            throw new InvalidDataException($"{Path}: a .txt file has no columns to filter on ({Filters[0]})");
        return (data, RowFilter.Apply(data, Filters));
    }

    /// <inheritdoc/>
    public override string ToString() => Path + (Column is null ? "" : ":" + Column) + string.Concat(Filters.Select(f => f.ToString()));
}
