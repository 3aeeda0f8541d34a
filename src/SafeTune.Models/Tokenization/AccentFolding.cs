namespace SafeTune.Models.Tokenization;

/// <summary>
/// Strips the diacritics of Latin letters (U+00C0 to U+024F) the way Hugging Face's uncased BERT tokenizer does (NFD,
/// then drop the combining marks). SafeTune runs with invariant globalization, where <see cref="string.Normalize()"/>
/// leaves such letters composed, so the decompositions are tabled here: each letter of <see cref="Composed"/> maps to the
/// base letter at the same position of <see cref="Base"/>.
/// </summary>
internal static class AccentFolding
{
    private const string Composed =
        "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĨĩĪīĬĭĮįİĴĵĶķĹĺĻļĽľŃńŅņŇňŌōŎŏŐő" +
        "ŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžƠơƯưǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȦȧȨȩȪȫȬȭȮȯȰȱȲȳ";
    private const string Base =
        "AAAAAACEEEEIIIINOOOOOUUUUYaaaaaaceeeeiiiinooooouuuuyyAaAaAaCcCcCcCcDdEeEeEeEeEeGgGgGgGgHhIiIiIiIiIJjKkLlLlLlNnNnNnOoOoOo" +
        "RrRrRrSsSsSsSsTtTtUuUuUuUuUuUuWwYyYZzZzZzOoUuAaIiOoUuUuUuUuUuAaAaGgKkOoOojGgNnAaAaAaEeEeIiIiOoOoRrRrUuUuSsTtHhAaEeOoOoOoOoYy";

    private static readonly char[] Map = BuildMap();

    /// <summary><paramref name="text"/> with every tabled letter replaced by its base letter (the same string when there is none).</summary>
    public static string Fold(string text)
    {
        int first = -1;
        for (int i = 0; i < text.Length; i++)
            if (text[i] is >= '\u00C0' and <= '\u024F' && Map[text[i] - 0xC0] != '\0') { first = i; break; }
        if (first < 0) return text;
        return string.Create(text.Length, (text, first), static (span, state) =>
        {
            var (s, start) = state;
            s.AsSpan().CopyTo(span);
            for (int i = start; i < span.Length; i++)
                if (span[i] is >= '\u00C0' and <= '\u024F' && Map[span[i] - 0xC0] is var b && b != '\0') span[i] = b;
        });
    }

    private static char[] BuildMap()
    {
        var map = new char[0x250 - 0xC0];
        for (int i = 0; i < Composed.Length; i++) map[Composed[i] - 0xC0] = Base[i];
        return map;
    }
}
